package mariadbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, db.PingContext(ctx))
	return db
}

func TestDSNGivesFreshDatabase(t *testing.T) {
	ctx := context.Background()
	var first string
	t.Run("first", func(t *testing.T) {
		db := open(t, DSN(t))
		require.NoError(t, db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&first))
		_, err := db.ExecContext(ctx, "CREATE TABLE x (id INT PRIMARY KEY)")
		require.NoError(t, err)

		var flush, maxConns int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit, @@max_connections").Scan(&flush, &maxConns))
		require.Equal(t, 1, flush)
		require.Equal(t, 300, maxConns)

		// clientFoundRows: an UPDATE that changes nothing still reports
		// the rows it matched.
		_, err = db.ExecContext(ctx, "INSERT INTO x VALUES (1)")
		require.NoError(t, err)
		res, err := db.ExecContext(ctx, "UPDATE x SET id = 1 WHERE id = 1")
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		// multiStatements.
		_, err = db.ExecContext(ctx, "CREATE TABLE y (id INT); CREATE TABLE z (id INT)")
		require.NoError(t, err)

		// A session left inside a transaction does not block the drop.
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO x VALUES (2)")
		require.NoError(t, err)
	})

	db := open(t, DSN(t))
	var second string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&second))
	require.NotEqual(t, first, second)

	// The first test's database was dropped by its cleanup, even though its
	// connections (one inside a transaction) were still open at that point.
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", first).Scan(&n))
	require.Equal(t, 0, n)

	// Empty: no tables.
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n))
	require.Equal(t, 0, n)
}

func TestStartServerStop(t *testing.T) {
	if _, err := findBinaries(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	srv, err := StartServer(ctx, dir)
	require.NoError(t, err)
	defer srv.Stop()

	dsn, err := srv.CreateDB(ctx, "bench")
	require.NoError(t, err)
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	defer db.Close()
	var one int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)

	_, err = srv.CreateDB(ctx, "Robert'); DROP")
	require.Error(t, err)

	// Stop with a session still open.
	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop()) // idempotent
	select {
	case <-srv.proc.Exited():
	default:
		t.Fatal("mariadbd still running after Stop")
	}
	_, err = os.Stat(filepath.Join(dir, "mariadbd.pid"))
	require.True(t, os.IsNotExist(err), "pid file left behind: %v", err)

	db2, err := sql.Open("mysql", srv.DSN(""))
	require.NoError(t, err)
	defer db2.Close()
	require.Error(t, db2.PingContext(ctx))
}

func TestMissingPolicy(t *testing.T) {
	notInstalled := fmt.Errorf("%w (test)", ErrNotInstalled)

	skip, msg := missing(notInstalled, "")
	require.True(t, skip)
	require.Contains(t, msg, EnvRequire)

	skip, msg = missing(notInstalled, "1")
	require.False(t, skip)
	require.Contains(t, msg, EnvRequire)

	skip, _ = missing(errors.New("mariadb-install-db: boom"), "")
	require.False(t, skip, "start-up failures other than a missing installation must fail, not skip")
}

func TestFindBinariesOverride(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	_, err := findBinaries()
	require.ErrorIs(t, err, ErrNotInstalled)
}
