package participant_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/internal/barriertest"
	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openSQLite(t testing.TB) *sql.DB {
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

// openMySQL opens a database on a MariaDB server of the test's own (the
// package's TestMain is pgtest's, which cannot stop a shared one).
func openMySQL(t *testing.T) *sql.DB {
	t.Helper()
	srv := mariadbtest.Start(t)
	// The deadline starts after the server's start, with room for a busy
	// machine (several servers start at once in this package).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := srv.CreateDB(ctx, "barrier")
	require.NoError(t, err)
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(64)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(ctx))
	return db
}

// sqlHarness binds the shared barrier scenarios to database/sql.
func sqlHarness(t *testing.T, db *sql.DB, b participant.Barrier) barriertest.Harness {
	ctx := context.Background()
	require.NoError(t, b.Migrate(ctx, db))
	require.NoError(t, b.Migrate(ctx, db), "Migrate is idempotent")
	_, err := db.ExecContext(ctx, barriertest.CounterSchemaFor(b.Dialect))
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
	t.Parallel()
	db := openSQLite(t)
	barriertest.Run(t, sqlHarness(t, db, participant.Barrier{Dialect: appdb.SQLite}))
}

func TestBarrierPostgres(t *testing.T) {
	t.Parallel()
	db := openPostgres(t)
	barriertest.Run(t, sqlHarness(t, db, participant.Barrier{Dialect: appdb.Postgres}))
}

func TestBarrierMySQL(t *testing.T) {
	t.Parallel()
	db := openMySQL(t)
	barriertest.Run(t, sqlHarness(t, db, participant.Barrier{Dialect: appdb.MySQL}))

	// Keys match byte for byte: gids differing in case or by a trailing
	// space are different transactions.
	ctx := context.Background()
	b := participant.Barrier{Dialect: appdb.MySQL}
	runs := 0
	for _, gid := range []string{"g-exact", "G-EXACT", "g-exact "} {
		require.NoError(t, b.Do(ctx, db, participant.Branch{GID: gid, Index: 0, Op: dtx.OpAction}, func(*sql.Tx) error { runs++; return nil }))
	}
	require.Equal(t, 3, runs)

	t.Run("SecondWaits", func(t *testing.T) { testMySQLSecondWaits(t, db) })
}

// txExecer adapts *sql.Tx to participant.TxExecer.
type txExecer struct{ tx *sql.Tx }

func (e txExecer) ExecAffected(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := e.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (e txExecer) QueryString(ctx context.Context, q string, args ...any) (string, error) {
	var v string
	err := e.tx.QueryRowContext(ctx, q, args...).Scan(&v)
	return v, err
}

// testMySQLSecondWaits checks the InnoDB guarantee the barrier rests on: a
// second delivery of the same operation blocks on the first one's
// uncommitted row, then sees its outcome (a duplicate after a commit, a
// fresh start after a rollback).
func testMySQLSecondWaits(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	b := participant.Barrier{Dialect: appdb.MySQL}
	require.NoError(t, b.Migrate(ctx, db))
	for _, commit := range []bool{true, false} {
		br := participant.Branch{GID: fmt.Sprintf("g-wait-%v", commit), Index: 0, Op: dtx.OpAction}
		tx1, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		run, err := b.Enter(ctx, txExecer{tx1}, br)
		require.NoError(t, err)
		require.True(t, run)

		type result struct {
			run bool
			err error
		}
		second := make(chan result, 1)
		go func() {
			tx2, err := db.BeginTx(ctx, nil)
			if err != nil {
				second <- result{err: err}
				return
			}
			defer tx2.Rollback()
			run, err := b.Enter(ctx, txExecer{tx2}, br)
			second <- result{run, err}
		}()
		select {
		case r := <-second:
			t.Fatalf("second delivery did not wait for the first: %+v", r)
		case <-time.After(300 * time.Millisecond):
		}
		if commit {
			require.NoError(t, tx1.Commit())
		} else {
			require.NoError(t, tx1.Rollback())
		}
		r := <-second
		require.NoError(t, r.err)
		require.Equal(t, !commit, r.run, "commit=%v", commit)
	}
}

func TestBarrierCustomTable(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

func TestSchemaMySQL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "mysql", appdb.MySQL.String())
	stmts, err := participant.Barrier{Dialect: appdb.MySQL, Table: "shop.barrier"}.Schema()
	require.NoError(t, err)
	require.Len(t, stmts, 1)
	require.Contains(t, stmts[0], "CREATE TABLE IF NOT EXISTS shop.barrier")
}

func TestSchemaPostgres(t *testing.T) {
	t.Parallel()
	stmts, err := participant.Barrier{Dialect: appdb.Postgres, Table: "s.t"}.Schema()
	require.NoError(t, err)
	require.NotEmpty(t, stmts)
	require.Contains(t, stmts[len(stmts)-1], "CREATE TABLE IF NOT EXISTS s.t")
}
