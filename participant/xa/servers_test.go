package xa_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/pgtest"
)

// pgServer is a PostgreSQL server with max_prepared_transactions > 0.
// pgtest starts its servers without that setting (and it can only be set at
// server start), so this initialises a cluster with pgtest.StartServer, sets
// it with ALTER SYSTEM, stops the server and starts postgres again itself on
// the same data directory.
type pgServer struct {
	port int
	n    atomic.Int64
}

func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Under /tmp: when running as root, postgres runs as another user that
	// must be able to enter the directory.
	dir, err := os.MkdirTemp("/tmp", "dtx-xa-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := pgtest.StartServer(ctx, dir)
	if errors.Is(err, pgtest.ErrNotInstalled) && os.Getenv(pgtest.EnvRequire) != "1" {
		t.Skipf("skipping PostgreSQL test: %v", err)
	}
	require.NoError(t, err)
	db, err := sql.Open("pgx", srv.DSN("postgres"))
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "ALTER SYSTEM SET max_prepared_transactions = 64")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, srv.Stop())

	bin, err := pgBinDir()
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "pgdata")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		fi, err := os.Stat(dataDir)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		cred = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	logf, err := os.Create(filepath.Join(dir, "restart.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", dataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=on", "-c", "logging_collector=off")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	s := &pgServer{port: port}
	for {
		db, err := sql.Open("pgx", s.dsn("postgres"))
		require.NoError(t, err)
		var n int
		err = db.QueryRowContext(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n)
		db.Close()
		if err == nil {
			require.Equal(t, 64, n)
			return s
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("postgres exited on restart:\n%s", b)
		case <-ctx.Done():
			t.Fatalf("postgres did not come up after restart: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// createDB returns the DSN of a new database. It is not dropped: prepared
// transactions left behind by a failed test would block that, and the
// server goes away with the test.
func (s *pgServer) createDB(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("xa_%d", s.n.Add(1))
	db, err := sql.Open("pgx", s.dsn("postgres"))
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE DATABASE " + name)
	require.NoError(t, err)
	return s.dsn(name)
}

// pgBinDir finds the PostgreSQL binaries the way pgtest does.
func pgBinDir() (string, error) {
	if d := os.Getenv(pgtest.EnvBinDir); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		d := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	ver := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return ver(dirs[i]) > ver(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", pgtest.ErrNotInstalled
}

type mariaServer struct {
	srv *mariadbtest.Server
	n   atomic.Int64
}

func startMariaDB(t *testing.T) *mariaServer {
	return &mariaServer{srv: mariadbtest.Start(t)}
}

func (s *mariaServer) createDB(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.srv.CreateDB(ctx, fmt.Sprintf("xa_%d", s.n.Add(1)))
	require.NoError(t, err)
	return dsn
}
