package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/stretchr/testify/require"
)

// TestConsumer_AttemptsSurviveRestart: a broker that numbers attempts in
// memory (Kafka) starts again at 1 after the consumer restarts; the
// failures counted in the database still bring the message to its dead
// letter at MaxAttempts, and a processed message leaves no count behind.
func TestConsumer_AttemptsSurviveRestart(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		in := inbox.Inbox{Dialect: d.Dialect, Table: "svc_inbox"}
		db := d.Open(t)
		require.NoError(t, in.Migrate(ctx, db))
		fx := newEffects(t, db, d.Dialect)
		failing := errors.New("downstream unavailable")
		consumer := func(db *sql.DB) inbox.Consumer {
			return inbox.Consumer{
				Inbox: in, DB: db, Group: "g", MaxAttempts: 3, Logger: discard,
				Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
					if err := fx.apply(ctx, tx, d.ID); err != nil {
						return err
					}
					if d.Key == "bad" {
						return failing
					}
					return nil
				},
			}
		}

		bad := delivery("m-bad", 1)
		bad.Key = "bad"
		c := consumer(db)
		require.ErrorIs(t, c.Handle(ctx, bad), failing)
		bad.Attempt = 2
		require.ErrorIs(t, c.Handle(ctx, bad), failing)
		n, err := in.Failures(ctx, db, "g", "m-bad")
		require.NoError(t, err)
		require.Equal(t, 2, n)

		// Restart: a new pool and consumer; the broker counts from 1 again.
		db2 := d.Open(t)
		c = consumer(db2)
		bad.Attempt = 1
		require.NoError(t, c.Handle(ctx, bad), "third failure overall: dead-lettered")
		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		require.Equal(t, 3, dls[0].Attempts)
		n, err = in.Failures(ctx, db2, "g", "m-bad")
		require.NoError(t, err)
		require.Zero(t, n, "the count goes with the dead letter")
		require.Zero(t, fx.count(t, "m-bad"))

		// A message that fails once and then succeeds leaves no count.
		okMsg := delivery("m-flaky", 1)
		okMsg.Key = "bad"
		require.Error(t, c.Handle(ctx, okMsg))
		okMsg.Key = "good"
		okMsg.Attempt = 2
		require.NoError(t, c.Handle(ctx, okMsg))
		n, err = in.Failures(ctx, db2, "g", "m-flaky")
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, 1, fx.count(t, "m-flaky"))

		// The broker's own number counts too (NATS keeps it across restarts).
		late := delivery("m-late", 7)
		late.Key = "bad"
		require.NoError(t, c.Handle(ctx, late))
		dls, err = c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 2)
	})
}

// TestConsumer_RetryDelay: a failed attempt that will be retried is handed
// back to the broker no sooner than RetryDelay; the one that dead-letters
// the message is not delayed.
func TestConsumer_RetryDelay(t *testing.T) {
	ctx := context.Background()
	d := testdb.SQLite(t)
	db := d.Open(t)
	in := inbox.Inbox{Dialect: d.Dialect}
	require.NoError(t, in.Migrate(ctx, db))
	const delay = 200 * time.Millisecond
	c := inbox.Consumer{
		Inbox: in, DB: db, Group: "g", MaxAttempts: 2, RetryDelay: delay, Logger: discard,
		Process: func(context.Context, *sql.Tx, broker.Delivery) error { return errors.New("no") },
	}
	start := time.Now()
	require.Error(t, c.Handle(ctx, delivery("m", 1)))
	require.GreaterOrEqual(t, time.Since(start), delay)
	require.NoError(t, c.Handle(ctx, delivery("m", 2)), "dead-lettered")

	c.RetryDelay = -time.Second
	require.ErrorContains(t, c.Handle(ctx, delivery("m3", 1)), "RetryDelay")
}
