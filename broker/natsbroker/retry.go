package natsbroker

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtxhq/dtx/internal/backoff"
)

// Delays between the attempts of a call that failed for a passing reason.
const (
	retryBase = 50 * time.Millisecond
	retryMax  = time.Second
)

// errAttemptTimeout marks an attempt that ran out of its own time
// (Config.RequestTimeout) while the caller's context was still live.
var errAttemptTimeout = errors.New("natsbroker: no answer within the request timeout")

// transient reports an error that passes once the cluster has a leader
// again or the connection is back: no responders (no stream or consumer
// leader, or the node went away), an unanswered request (it went to a
// node that died), a lost connection, or the server's 503 (JetStream
// cluster temporarily unavailable). Anything else (a bad message, a
// missing stream, JetStream not enabled) is returned at once.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, errAttemptTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrStaleConnection):
		return true
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return false // a 503 too, but it lasts
	case errors.As(err, &apiErr):
		return apiErr.Code == http.StatusServiceUnavailable
	}
	return false
}

// retry runs call with a context bounded by Config.RequestTimeout until it
// succeeds, fails for a lasting reason (not transient), or ctx ends. The
// error of a canceled ctx wraps the last attempt's error too.
func (b *Broker) retry(ctx context.Context, call func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := b.attempt(ctx, call)
		if err == nil || !transient(err) {
			return err
		}
		b.cfg.Logger.Debug("natsbroker: retrying", "attempt", attempt, "error", err)
		t := time.NewTimer(backoff.Delay(retryBase, retryMax, attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

// attempt runs call once with a context bounded by Config.RequestTimeout;
// running out of that time (and not of ctx's) is errAttemptTimeout.
func (b *Broker) attempt(ctx context.Context, call func(ctx context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	err := call(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return errors.Join(errAttemptTimeout, err)
	}
	return err
}
