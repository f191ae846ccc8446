package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// asyncTransports is the coordinator's transport under saga-async: its
// scheme table sends broker:// steps as commands through bt, and http(s)
// steps over HTTP.
func asyncTransports(bt *brokertransport.Transport) dtx.Transport {
	h := httptransport.New(nil)
	return transport.Schemes{"http": h, "https": h, brokertransport.URLScheme: bt}
}

// startSagaAsync prepares the demo's saga-async pattern: an embedded NATS
// JetStream (files in work/nats) and the coordinator's transport, which
// sends broker:// steps as commands over it (replies come back on its own
// topic; asyncTransports adds HTTP for the other steps). It returns the
// coordinator owner the transport's replies are addressed to; the caller
// closes the transport, then the broker. signer signs the commands.
func startSagaAsync(ctx context.Context, work string, out io.Writer, signer *callsig.Signer) (*natsbroker.Broker, *brokertransport.Transport, string, error) {
	dir := filepath.Join(work, "nats")
	nb, err := natsbroker.OpenEmbedded(ctx, dir, natsbroker.Config{})
	if err != nil {
		return nil, nil, "", fmt.Errorf("embedded NATS: %w", err)
	}
	owner := fmt.Sprintf("dtx-demo-%d", os.Getpid())
	tr, err := brokertransport.New(ctx, nb, brokertransport.Config{Owner: owner, Signer: signer})
	if err != nil {
		nb.Close()
		return nil, nil, "", err
	}
	fmt.Fprintf(out, "  branch calls as commands through an embedded NATS JetStream (files in %s), replies on %s\n", dir, tr.ReplyTopic())
	return nb, tr, owner, nil
}
