package pgserver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestStartStop(t *testing.T) {
	if _, err := findBinDir(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(TempBase(), "dtx-pgserver-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	srv, err := Start(ctx, dir)
	require.NoError(t, err)
	defer srv.Stop()

	dsn, err := srv.CreateDB(ctx, "bench")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	var prepared int
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&prepared))
	require.Equal(t, 64, prepared, "XA needs prepared transactions")

	_, err = srv.CreateDB(ctx, "Robert'); DROP")
	require.Error(t, err)

	// Stop with a session still open (fast shutdown disconnects it).
	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop()) // idempotent
	conn.Close(ctx)
	select {
	case <-srv.current().Exited():
	default:
		t.Fatal("postgres still running after Stop")
	}
	_, err = os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid"))
	require.True(t, os.IsNotExist(err), "postmaster.pid left behind: %v", err)

	_, err = pgx.Connect(ctx, srv.DSN("postgres"))
	require.Error(t, err)
}

func TestFindBinDirOverride(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	_, err := findBinDir()
	require.ErrorIs(t, err, ErrNotInstalled)
}

func TestStartWithSettingsAndRestart(t *testing.T) {
	if _, err := findBinDir(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(TempBase(), "dtx-pgserver-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	srv, err := StartWith(ctx, dir, Options{Settings: map[string]string{"wal_level": "logical"}})
	require.NoError(t, err)
	defer srv.Stop()
	dsn, err := srv.CreateDB(ctx, "kept")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var level string
	require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&level))
	require.Equal(t, "logical", level)
	_, err = conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
	require.NoError(t, err)

	port := srv.Port()
	require.NoError(t, srv.Restart(ctx))
	require.Equal(t, port, srv.Port(), "a restarted server keeps its port")
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err, "the restart disconnects sessions")
	conn.Close(ctx)

	conn, err = pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v))
	require.Equal(t, 42, v, "data survives the restart")

	require.NoError(t, srv.Stop())
	require.Error(t, srv.Restart(ctx), "a stopped server does not restart")
}
