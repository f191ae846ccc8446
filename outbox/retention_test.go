package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
)

// TestPurge: only rows published longer ago than the age go, in batches;
// unpublished rows stay however old.
func TestPurge(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		ob := outbox.Outbox{Dialect: d.Dialect, Table: "purge_outbox"}
		require.NoError(t, ob.Migrate(ctx, db))
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		var msgs []broker.Message
		for i := range 10 {
			msgs = append(msgs, msg("k", i))
		}
		require.NoError(t, ob.Add(ctx, tx, msgs...))
		require.NoError(t, tx.Commit())
		day := (24 * time.Hour).Milliseconds()
		// seq 1-5: published 30 days ago; 6-7: published now; 8-10 unpublished
		// and created 30 days ago.
		for _, u := range []struct {
			q    string
			args []any
		}{
			{`UPDATE purge_outbox SET published_at = created_at - ?, created_at = created_at - ? WHERE seq <= 5`, []any{30 * day, 30 * day}},
			{`UPDATE purge_outbox SET published_at = created_at WHERE seq IN (6, 7)`, nil},
			{`UPDATE purge_outbox SET created_at = created_at - ? WHERE seq > 7`, []any{30 * day}},
		} {
			_, err := db.ExecContext(ctx, d.Dialect.Rebind(u.q), u.args...)
			require.NoError(t, err)
		}
		_, err = ob.Purge(ctx, db, -time.Second, 0)
		require.Error(t, err)
		n, err := ob.Purge(ctx, db, time.Hour, 2)
		require.NoError(t, err)
		require.EqualValues(t, 5, n, "the rows published long ago, in batches of 2")
		var left, unpublished int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM purge_outbox`).Scan(&left))
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM purge_outbox WHERE published_at IS NULL`).Scan(&unpublished))
		require.Equal(t, 5, left)
		require.Equal(t, 3, unpublished, "unpublished rows are never purged")
	})
}
