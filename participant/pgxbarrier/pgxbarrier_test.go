package pgxbarrier_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/internal/barriertest"
	"github.com/dtxhq/dtx/participant/pgxbarrier"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	// The shared server may start now (seconds on a busy machine): the
	// deadline is for connecting, after it.
	cfg, err := pgxpool.ParseConfig(pgtest.DSN(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, pool.Ping(ctx))
	return pool
}

func harness(t *testing.T, pool *pgxpool.Pool, b participant.Barrier) barriertest.Harness {
	ctx := context.Background()
	require.NoError(t, pgxbarrier.Migrate(ctx, pool, b))
	require.NoError(t, pgxbarrier.Migrate(ctx, pool, b), "Migrate is idempotent")
	_, err := pool.Exec(ctx, barriertest.CounterSchema)
	require.NoError(t, err)
	inc, sel := barriertest.Increment(appdb.Postgres), barriertest.Select(appdb.Postgres)
	return barriertest.Harness{
		Deliver: func(ctx context.Context, br participant.Branch, fail error) error {
			return pgxbarrier.Do(ctx, pool, b, br, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, inc, barriertest.Key(br)); err != nil {
					return err
				}
				return fail
			})
		},
		Count: func(ctx context.Context, br participant.Branch) int {
			var n int
			err := pool.QueryRow(ctx, sel, barriertest.Key(br)).Scan(&n)
			if errors.Is(err, pgx.ErrNoRows) {
				return 0
			}
			require.NoError(t, err)
			return n
		},
	}
}

func TestBarrierPgx(t *testing.T) {
	t.Parallel()
	// The zero Barrier says SQLite; pgxbarrier must use Postgres anyway.
	barriertest.Run(t, harness(t, openPool(t), participant.Barrier{}))
}

// TestConnAndCustomTable runs Do on a single pgx.Conn (not a pool) with a
// schema-qualified custom table: a null compensation bars the late action.
func TestConnAndCustomTable(t *testing.T) {
	t.Parallel()
	pool := openPool(t)
	ctx := context.Background()
	b := participant.Barrier{Dialect: appdb.Postgres, Table: "public.other_barrier"}
	require.NoError(t, pgxbarrier.Migrate(ctx, pool, b))

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	br := participant.Branch{GID: "g-conn", Index: 0, Op: dtx.OpCompensate}
	calls := 0
	fn := func(pgx.Tx) error { calls++; return nil }
	require.NoError(t, pgxbarrier.Do(ctx, conn.Conn(), b, br, fn))
	br.Op = dtx.OpAction
	require.ErrorIs(t, pgxbarrier.Do(ctx, conn.Conn(), b, br, fn), participant.ErrHanging)
	require.Equal(t, 0, calls)

	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM other_barrier WHERE gid = 'g-conn'").Scan(&n))
	require.Equal(t, 2, n)

	require.Error(t, pgxbarrier.Migrate(ctx, pool, participant.Barrier{Table: "bad name"}))
}
