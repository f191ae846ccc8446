package inventory

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/examples/shop/internal/shopxa"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/participant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCancelReservation_SweepBesideBarrierCancel runs the resolver's
// stale-reservation cancel (no barrier) while the coordinator's cancel of the
// same transaction (through the barrier) is in progress: the stock must be
// released once.
func TestCancelReservation_SweepBesideBarrierCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("postgres")
	}
	ctx := context.Background()
	db, d, err := shopdb.Open(ctx, pgtest.DSN(t), "")
	require.NoError(t, err)
	s := New(db, Config{Dialect: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.Seed(ctx, []Product{{ID: 1, Name: "w", Price: 1, Available: 100}}))
	// Two orders reserve 5 each (reserved = 10).
	for i, gid := range []string{"g1", "g2"} {
		br := participant.Branch{GID: gid, Index: 1, Op: dtx.OpTry}
		require.NoError(t, s.barrier.Do(ctx, db, br, func(tx *sql.Tx) error {
			return reserve(ctx, tx, gid, DeductRequest{OrderID: int64(i + 1), Items: []Item{{ProductID: 1, Quantity: 5}}})
		}))
	}
	// The coordinator's cancel of g1 (through the barrier) is in progress...
	started := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.barrier.Do(ctx, db, participant.Branch{GID: "g1", Index: 1, Op: dtx.OpCancel}, func(tx *sql.Tx) error {
			if err := cancelReservation(ctx, tx, 1); err != nil {
				return err
			}
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	// ...while the resolver's sweep cancels g1 too (no barrier).
	sweep := make(chan error, 1)
	go func() { sweep <- shopxa.CancelReserved(db, "reservations", cancelReservation)(ctx, "g1") }()
	// Release the barrier's cancel once the sweep waits for its locks (or,
	// taking none of them, has finished).
	require.Eventually(t, func() bool {
		if len(sweep) > 0 {
			return true
		}
		var waiting int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting > 0
	}, 20*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	require.NoError(t, <-sweep)
	p, err := s.Product(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, int64(95), p.Available, "5 units released once")
	require.Equal(t, int64(5), p.Reserved)
}
