package pgtail_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// holdingPublisher never publishes: each call waits for its context.
type holdingPublisher struct{}

func (holdingPublisher) Publish(ctx context.Context, _ ...broker.Message) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestCleanFindsARowVisibleLate: the relay can decode a commit before the
// inserting transaction is visible to other sessions, so its clean
// statement may not find the row yet (a CI run of TestTailing kept a
// published row for good). The row is cleaned once it is visible. Here
// the row's clean is queued while its transaction is still open, and its
// publication is held, so that only the retry can delete it.
func TestCleanFindsARowVisibleLate(t *testing.T) {
	srv := pgtest.StartWith(t, logical)
	dsn, db, ob := newDB(t, srv)
	r, stop := runRelay(t, dsn, holdingPublisher{}, pgtail.Config{Slot: "late"})
	defer stop()
	require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)

	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	require.NoError(t, ob.Add(ctx, tx, msg("a", 1)))
	var seq int64
	require.NoError(t, tx.QueryRowContext(ctx, "SELECT max(seq) FROM "+outbox.DefaultTable).Scan(&seq))
	r.EnqueueClean([]int64{seq})
	// Not visible to the relay's session yet: its clean misses the row.
	require.Eventually(t, func() bool { return r.Stats().CleanMissed > 0 }, waitLong, 5*time.Millisecond)
	require.NoError(t, tx.Commit())
	require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond,
		"the row is deleted once its transaction is visible")
}
