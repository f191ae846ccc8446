package inbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/testdb"
)

// TestBatcher_SingleDelivery: a delivery that arrives alone goes through
// the batch transaction (prepared statements) too, and keeps
// Consumer.Handle's contract: a failure is counted once and retried, the
// retry's success clears the count, and a redelivery is a duplicate; on
// a pool of one connection.
func TestBatcher_SingleDelivery(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		// One connection, as SQLite applications use: the Batcher must
		// not wait for a second one while its transaction holds this one.
		db.SetMaxOpenConns(1)
		in := inbox.Inbox{Dialect: d.Dialect}
		require.NoError(t, in.Migrate(ctx, db))
		fx := newEffects(t, db, d.Dialect)
		fail := map[string]error{"s": errors.New("not yet")}
		r := newBatchRig(t, db, in, fx, "g-single", fail)
		close(r.release)

		require.ErrorContains(t, r.b.Handle(ctx, delivery("s", 1)), "not yet")
		require.Equal(t, 0, fx.count(t, "g-single/s"), "the failed delivery left no effect")
		n, err := in.Failures(ctx, db, "g-single", "s")
		require.NoError(t, err)
		require.Equal(t, 1, n, "the failure is counted once")

		delete(fail, "s")
		require.NoError(t, r.b.Handle(ctx, delivery("s", 2)))
		require.Equal(t, 1, fx.count(t, "g-single/s"))
		n, err = in.Failures(ctx, db, "g-single", "s")
		require.NoError(t, err)
		require.Zero(t, n, "success cleared the failure count")

		require.NoError(t, r.b.Handle(ctx, delivery("s", 3)))
		require.Equal(t, 1, fx.count(t, "g-single/s"), "a redelivery is a duplicate")
	})
}
