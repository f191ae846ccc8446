package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/testdb"
)

// TestPurge: records older than the age go, in batches; recent ones stay and
// still stop duplicates; an age below MinPurgeAge is refused.
func TestPurge(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		in := inbox.Inbox{Dialect: d.Dialect, Table: "purge_inbox"}
		require.NoError(t, in.Migrate(ctx, db))
		runs := 0
		handle := func(id string) {
			t.Helper()
			require.NoError(t, in.Handle(ctx, db, delivery(id, 1), "g", func(*sql.Tx) error { runs++; return nil }))
		}
		for i := range 7 {
			handle(fmt.Sprintf("old-%d", i))
		}
		_, err := db.ExecContext(ctx, d.Dialect.Rebind(`UPDATE purge_inbox SET processed_at = processed_at - ?`), (30 * 24 * time.Hour).Milliseconds())
		require.NoError(t, err)
		handle("new")
		require.Equal(t, 8, runs)

		_, err = in.Purge(ctx, db, time.Hour, 0)
		require.ErrorIs(t, err, inbox.ErrRetentionTooShort)
		n, err := in.Purge(ctx, db, inbox.SafeRetention(7*24*time.Hour), 3)
		require.NoError(t, err)
		require.EqualValues(t, 7, n, "the old records, in batches of 3")

		handle("new")
		require.Equal(t, 8, runs, "the recent record still stops its duplicate")
		handle("old-0")
		require.Equal(t, 9, runs, "a purged record no longer does")
	})
}
