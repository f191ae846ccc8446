package projection

import (
	"context"
	"database/sql"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/eventstore"
)

// FromBroker adapts a projection's Apply to the Process function of an
// inbox.Consumer, for a query model fed through the broker (events the
// event store wrote into its outbox, Config.Outbox) instead of by a Runner
// reading the store. The inbox then provides exactly-once: it records each
// message id in the same transaction as the update.
//
// The trade-offs differ from a Runner: events arrive in order per stream
// (the message key), not in the global order; there is no checkpoint to
// rebuild from (replay the store with a Runner for that); and the lag is
// the broker's. upcast, if not nil, is applied first (Store.Upcast of a
// store with the same upcasters). A message that does not carry an event
// is a permanent error: dead-lettered, never retried.
func FromBroker(apply func(ctx context.Context, tx *sql.Tx, e eventstore.Event) error,
	upcast func(eventstore.Event) (eventstore.Event, error)) func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
	return func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
		e, err := eventstore.EventFromMessage(d.Message)
		if err != nil {
			return dtx.Permanent(err)
		}
		if upcast != nil {
			if e, err = upcast(e); err != nil {
				return dtx.Permanent(err)
			}
		}
		return apply(ctx, tx, e)
	}
}
