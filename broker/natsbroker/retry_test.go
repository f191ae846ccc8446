package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestTransient: the errors of a node's loss and a leader's election are
// retried; a lasting error is not.
func TestTransient(t *testing.T) {
	for _, err := range []error{
		nats.ErrNoResponders,
		nats.ErrTimeout,
		jetstream.ErrNoStreamResponse,
		jetstream.ErrAsyncPublishTimeout,
		nats.ErrConnectionReconnecting,
		errors.Join(errAttemptTimeout, context.DeadlineExceeded),
		fmt.Errorf("natsbroker: publish 1: %w", &jetstream.APIError{Code: 503, Description: "JetStream system temporarily unavailable"}),
	} {
		require.True(t, transient(err), "%v", err)
	}
	for _, err := range []error{
		errors.New("boom"),
		context.Canceled,
		context.DeadlineExceeded, // the caller's own deadline
		nats.ErrConnectionClosed,
		jetstream.ErrStreamNotFound,
		jetstream.ErrJetStreamNotEnabled,
		&jetstream.APIError{Code: 400, Description: "bad request"},
	} {
		require.False(t, transient(err), "%v", err)
	}
}

// TestRetry: a call that fails for a passing reason is made again until it
// succeeds; one that overruns RequestTimeout counts as passing; a lasting
// error ends it at once; the caller's context ends it with both errors.
func TestRetry(t *testing.T) {
	b := &Broker{cfg: Config{RequestTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	ctx := context.Background()

	calls := 0
	require.NoError(t, b.retry(ctx, func(ctx context.Context) error {
		calls++
		switch calls {
		case 1:
			return nats.ErrNoResponders
		case 2:
			<-ctx.Done() // an unanswered request
			return ctx.Err()
		}
		return nil
	}))
	require.Equal(t, 3, calls)

	calls = 0
	lasting := errors.New("lasting")
	require.ErrorIs(t, b.retry(ctx, func(context.Context) error { calls++; return lasting }), lasting)
	require.Equal(t, 1, calls)

	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := b.retry(cctx, func(context.Context) error { return nats.ErrNoResponders })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}
