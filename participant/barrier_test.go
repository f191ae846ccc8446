package participant_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/internal/barriertest"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "p.db"), 0)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T) *sql.DB {
	t.Helper()
	dsn := pgtest.DSN(t)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(32)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, db.PingContext(ctx))
	return db
}

// sqlHarness binds the shared barrier scenarios to database/sql.
func sqlHarness(t *testing.T, db *sql.DB, b participant.Barrier) barriertest.Harness {
	ctx := context.Background()
	require.NoError(t, b.Migrate(ctx, db))
	require.NoError(t, b.Migrate(ctx, db), "Migrate is idempotent")
	_, err := db.ExecContext(ctx, barriertest.CounterSchema)
	require.NoError(t, err)
	inc, sel := barriertest.Increment(b.Dialect), barriertest.Select(b.Dialect)
	return barriertest.Harness{
		Deliver: func(ctx context.Context, br participant.Branch, fail error) error {
			return b.Do(ctx, db, br, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, inc, barriertest.Key(br)); err != nil {
					return err
				}
				return fail
			})
		},
		Count: func(ctx context.Context, br participant.Branch) int {
			var n int
			err := db.QueryRowContext(ctx, sel, barriertest.Key(br)).Scan(&n)
			if err == sql.ErrNoRows {
				return 0
			}
			require.NoError(t, err)
			return n
		},
	}
}

func TestBarrierSQLite(t *testing.T) {
	db := openSQLite(t)
	barriertest.Run(t, sqlHarness(t, db, participant.Barrier{Dialect: participant.SQLite}))
}

func TestBarrierPostgres(t *testing.T) {
	db := openPostgres(t)
	barriertest.Run(t, sqlHarness(t, db, participant.Barrier{Dialect: participant.Postgres}))
}

func TestBarrierCustomTable(t *testing.T) {
	db := openSQLite(t)
	b := participant.Barrier{Table: "my_barrier"}
	barriertest.Run(t, sqlHarness(t, db, b))
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM my_barrier").Scan(&n))
	require.Positive(t, n)
	require.Error(t, db.QueryRow("SELECT count(*) FROM dtx_barrier").Scan(&n), "default table must not be used")
}

func TestBarrierInvalidConfig(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	br := participant.Branch{GID: "g", Index: 0, Op: dtx.OpAction}
	called := false
	fn := func(*sql.Tx) error { called = true; return nil }

	bad := participant.Barrier{Table: "x; DROP TABLE y"}
	require.Error(t, bad.Migrate(ctx, db))
	require.Error(t, bad.Do(ctx, db, br, fn))
	require.Error(t, participant.Barrier{Dialect: 42}.Do(ctx, db, br, fn))
	require.False(t, called)
}

func TestBarrierPanicRollsBack(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	b := participant.Barrier{}
	require.NoError(t, b.Migrate(ctx, db))
	br := participant.Branch{GID: "g-panic", Index: 0, Op: dtx.OpAction}
	require.Panics(t, func() {
		_ = b.Do(ctx, db, br, func(*sql.Tx) error { panic("boom") })
	})
	runs := 0
	require.NoError(t, b.Do(ctx, db, br, func(*sql.Tx) error { runs++; return nil }))
	require.Equal(t, 1, runs, "the panicking attempt left no barrier row")
}

func TestSchemaPostgres(t *testing.T) {
	stmts, err := participant.Barrier{Dialect: participant.Postgres, Table: "s.t"}.Schema()
	require.NoError(t, err)
	require.NotEmpty(t, stmts)
	require.Contains(t, stmts[len(stmts)-1], "CREATE TABLE IF NOT EXISTS s.t")
}
