package brokertransport_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// TestSigned_CommandsVerified: a transport with a signer gets its commands
// run by a serving side that requires signatures; an unsigned transport's
// command, and a captured signed command replayed with another op, are
// answered 401 and run nothing.
func TestSigned_CommandsVerified(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	key, err := callsig.Generate(callsig.AlgEd25519, "k1")
	require.NoError(t, err)
	signer, err := callsig.NewSigner(key)
	require.NoError(t, err)
	verifier, err := callsig.NewVerifier(key.Public())
	require.NoError(t, err)

	var runs atomic.Int64
	sub, err := brokertransport.Serve(ctxT(t), b, "pay-charge", "svc", func(context.Context, participant.Branch, []byte) (any, error) {
		runs.Add(1)
		return nil, nil
	}, brokertransport.RequireSignature(verifier))
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })
	captured := make(chan broker.Delivery, 4)
	watch, err := b.Subscribe(ctxT(t), "pay-charge", "watch", func(_ context.Context, d broker.Delivery) error {
		captured <- d
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { watch.Close() })

	signed := newTransport(t, b, brokertransport.Config{Owner: "signed", Signer: signer})
	out := signed.Call(ctxT(t), call("order-1", "pay-charge", 1, callTimeout))
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.EqualValues(t, 1, runs.Load())
	cmd := signRecv(t, captured)
	require.NotEmpty(t, cmd.Headers[callsig.HeaderSignature])

	unsigned := newTransport(t, b, brokertransport.Config{Owner: "unsigned"})
	out = unsigned.Call(ctxT(t), call("order-1", "pay-charge", 2, callTimeout))
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "401")
	signRecv(t, captured)

	// Replay the captured command as a compensation, reply to us.
	replies := make(chan broker.Delivery, 1)
	rsub, err := b.Subscribe(ctxT(t), "replay-replies", "test", func(_ context.Context, d broker.Delivery) error {
		replies <- d
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { rsub.Close() })
	h := map[string]string{}
	for k, v := range cmd.Headers {
		h[k] = v
	}
	h[dtx.HeaderOp] = string(dtx.OpCompensate)
	h[brokertransport.HeaderReplyTo] = "replay-replies"
	require.NoError(t, b.Publish(ctxT(t), broker.Message{ID: "replay-1", Topic: "pay-charge", Key: "order-1", Headers: h, Payload: cmd.Payload}))
	r := signRecv(t, replies)
	require.Equal(t, "401", r.Headers[brokertransport.HeaderStatus])
	require.Contains(t, string(r.Payload), "signature does not match")
	require.EqualValues(t, 1, runs.Load(), "refused commands run nothing")
}

// signRecv receives from ch, failing the test after callTimeout.
func signRecv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(callTimeout):
		t.Fatal("nothing received")
		var zero T
		return zero
	}
}
