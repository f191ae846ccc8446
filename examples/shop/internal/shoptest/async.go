package shoptest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// MustAsyncCoordinator is MustCoordinator with a broker transport: steps
// with broker:// URLs are sent as commands over b (HTTP steps still go
// over HTTP). It returns the client and the transport (for its Stats); both
// are stopped when tb ends.
func MustAsyncCoordinator(tb testing.TB, b broker.Broker) (*client.Client, *brokertransport.Transport) {
	tb.Helper()
	const owner = "shoptest-coordinator"
	tr, err := brokertransport.New(context.Background(), b, brokertransport.Config{Owner: owner, Logger: Logger()})
	require.NoError(tb, err)
	tb.Cleanup(func() { tr.Close() }) // after the coordinator (cleanups run last first)
	h := httptransport.New(nil)
	return serveCoordinator(tb, transport.Schemes{"http": h, "https": h, brokertransport.URLScheme: tr}, owner), tr
}
