package pgha

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// start starts a cluster for t, closed when t ends; it skips t when
// pg_auto_failover is not installed, unless DTX_REQUIRE_PGHA=1.
func start(t *testing.T) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{})
	if err != nil {
		if errorsIsNotInstalled(err) && os.Getenv(EnvRequire) != "1" {
			t.Skipf("skipping pg_auto_failover test: %v (set %s=1 to make this a failure)", err, EnvRequire)
		}
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestFailoverAndRejoin(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dsn, err := c.CreateDatabase(ctx, "app")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var sync string
	require.NoError(t, conn.QueryRow(ctx, `SHOW synchronous_standby_names`).Scan(&sync))
	require.NotEmpty(t, sync, "commits wait for the standby")
	_, err = conn.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (1)`)
	require.NoError(t, err)
	conn.Close(ctx)

	first, err := c.KillPrimary(ctx)
	require.NoError(t, err)
	d, err := c.WaitFailover(ctx)
	require.NoError(t, err)
	t.Logf("failover: node %d killed, the standby took writes after %v", first+1, d.Round(time.Millisecond))
	now, err := c.Primary(ctx)
	require.NoError(t, err)
	require.NotEqual(t, first, now)

	// The multi-host DSN reaches the new primary; the committed row is there.
	conn, err = pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO t VALUES (2)`)
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n))
	require.Equal(t, 2, n)
	conn.Close(ctx)

	require.NoError(t, c.Rejoin(ctx))
	// The old primary follows the new one and has its writes.
	old, err := pgx.Connect(ctx, c.NodeDSN(first, "app"))
	require.NoError(t, err)
	defer old.Close(ctx)
	var recovering bool
	require.NoError(t, old.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovering))
	require.True(t, recovering, "the old primary is a standby now")
	require.Eventually(t, func() bool {
		return old.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n) == nil && n == 2
	}, time.Minute, 50*time.Millisecond)

	// And the cluster fails over back.
	second, err := c.KillPrimary(ctx)
	require.NoError(t, err)
	require.Equal(t, now, second)
	d, err = c.WaitFailover(ctx)
	require.NoError(t, err)
	t.Logf("failover back: the standby took writes after %v", d.Round(time.Millisecond))
}

func errorsIsNotInstalled(err error) bool { return errors.Is(err, ErrNotInstalled) }
