package bench

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/pgtest"
)

// TestRawXARateDoesTheBranchWork runs rawXARate on two databases of one
// server, as the xa bench's participants have them, and checks it did
// what it reports: every client's row moved on both databases by the same
// count (each transaction committed on both), and no prepared transaction
// is left behind.
func TestRawXARateDoesTheBranchWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	const clients = 3
	var dsns []string
	var dbs []*sql.DB
	for _, name := range []string{"raw_a", "raw_b"} {
		dsn, err := srv.CreateDB(ctx, name)
		require.NoError(t, err)
		db, err := sql.Open("pgx", dsn)
		require.NoError(t, err)
		defer db.Close()
		_, err = db.ExecContext(ctx, `CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)`)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `INSERT INTO counters SELECT g, 0 FROM generate_series(0, $1) g`, clients)
		require.NoError(t, err)
		dsns, dbs = append(dsns, dsn), append(dbs, db)
	}
	start := time.Now()
	rate, err := rawXARate(ctx, dsns[0], dsns[1], clients, 300*time.Millisecond)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Positive(t, rate)
	var total int64
	for w := range clients {
		var a, b int64
		require.NoError(t, dbs[0].QueryRowContext(ctx, `SELECT n FROM counters WHERE id = $1`, w).Scan(&a))
		require.NoError(t, dbs[1].QueryRowContext(ctx, `SELECT n FROM counters WHERE id = $1`, w).Scan(&b))
		require.Positive(t, a, "client %d committed on database A", w)
		require.Equal(t, a, b, "client %d: every transaction committed on both", w)
		total += a
	}
	require.LessOrEqual(t, rate, float64(total)/(300*time.Millisecond).Seconds()+1, "the rate counts no more than was committed")
	require.GreaterOrEqual(t, rate, float64(total)/elapsed.Seconds()-1, "the rate counts what was committed")
	var left int
	require.NoError(t, dbs[0].QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_xacts`).Scan(&left))
	require.Zero(t, left, "no prepared transaction left behind")
}

// TestRawXALibRateDoesTheBranchWork runs rawXALibRate on the xa bench's
// own participants and checks each transaction went through
// participant/xa on both databases: the counters moved alike, every try
// left its barrier row, nothing is left prepared.
func TestRawXALibRateDoesTheBranchWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	const clients = 2
	xb, err := xaBenchParticipants(ctx, clients)
	require.NoError(t, err)
	defer xb.stop()
	rate, err := rawXALibRate(ctx, xb, clients, 300*time.Millisecond)
	require.NoError(t, err)
	require.Positive(t, rate)
	var sums, tries [2]int64
	for k, db := range xb.dbs {
		require.NoError(t, db.QueryRowContext(ctx, `SELECT sum(n) FROM counters`).Scan(&sums[k]))
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM bench_barrier WHERE op = 'try'`).Scan(&tries[k]))
		var left int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_xacts`).Scan(&left))
		require.Zero(t, left, "no prepared transaction left behind")
	}
	require.Positive(t, sums[0])
	require.Equal(t, sums[0], sums[1], "every transaction committed on both")
	require.Equal(t, sums, tries, "a barrier row per try")
}
