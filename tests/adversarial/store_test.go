package adversarial_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// storeRunRefused runs `dtx server` on dsn, expecting it to refuse to start:
// it returns the process's output after checking that it exited non-zero
// with exactly one line.
func storeRunRefused(t *testing.T, dsn string, args ...string) string {
	t.Helper()
	bin := dtxBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"server", "--listen", "127.0.0.1:0", "--store", dsn}, args...)...)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "dtx server started on %s:\n%s", dsn, out)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "exited by itself, not killed by the deadline")
	require.NotZero(t, ee.ExitCode())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 1, "one clear line:\n%s", out)
	return lines[0]
}

// storeDamaged writes a store with some transactions at path and overwrites
// its pages after the first with garbage (the header stays intact).
func storeDamaged(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	at := time.Now()
	for i := range 200 {
		require.NoError(t, s.Create(ctx, &dtx.Tx{GID: fmt.Sprintf("g%03d", i), Pattern: dtx.PatternSaga,
			Status: dtx.StatusRunning, Spec: []byte(`{"steps":[]}`), CreatedAt: at, UpdatedAt: at}, nil))
	}
	require.NoError(t, s.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte(strings.Repeat("\x5a", int(fi.Size())-4096)), 4096)
	require.NoError(t, err)
}

// TestStoreCorruptSQLiteRefused: a store whose pages are damaged, or a file
// that is no database at all, stops `dtx server` at start with one line
// naming the file, instead of serving from (and writing into) garbage.
func TestStoreCorruptSQLiteRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	damaged := filepath.Join(dir, "damaged.db")
	storeDamaged(t, damaged)
	line := storeRunRefused(t, "sqlite://"+damaged)
	require.Contains(t, line, "not an intact SQLite database")
	require.Contains(t, line, damaged)

	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, []byte(strings.Repeat("this is not a database\n", 300)), 0o600))
	line = storeRunRefused(t, garbage)
	require.Contains(t, line, "not an intact SQLite database")
}

// TestStoreEmptySQLiteFileRefusedUnlessAsked: an existing 0-byte file (a
// truncated copy, a failed restore) is not taken for a fresh store; with
// ?init_empty=1 it is.
func TestStoreEmptySQLiteFileRefusedUnlessAsked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "empty.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	line := storeRunRefused(t, "sqlite://"+path)
	require.Contains(t, line, "existing empty file")
	require.Contains(t, line, "init_empty=1")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "the refused file is untouched")

	s := startServer(t, serverOpts{Store: "sqlite://" + path + "?init_empty=1"})
	require.True(t, s.Healthy())
	s.Kill()
	// Now a store: it starts without the parameter too.
	s = startServer(t, serverOpts{Store: "sqlite://" + path})
	require.True(t, s.Healthy())
}

// TestStoreDSNPasswordNotLogged: the password of a store DSN appears neither
// in the start-up log of a server that connects nor in the error of one
// that cannot.
func TestStoreDSNPasswordNotLogged(t *testing.T) {
	t.Parallel()
	const secret = "Adv3rsarialS3cret"
	// A closed port: the connection fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	line := storeRunRefused(t, "postgres://dtx:"+secret+"@"+closed+"/dtx?sslmode=disable&connect_timeout=5")
	require.NotContains(t, line, secret)
	line = storeRunRefused(t, "postgres://dtx@"+closed+"/dtx?sslmode=disable&connect_timeout=5&password="+secret)
	require.NotContains(t, line, secret)
	line = storeRunRefused(t, "ftp://dtx:"+secret+"@"+closed+"/dtx")
	require.NotContains(t, line, secret)

	// A server that connects (the throwaway server trusts loopback, so the
	// password is accepted and ignored) logs its store without it, here
	// given as a query parameter.
	u, err := url.Parse(pgtest.Start(t).DSN("postgres"))
	require.NoError(t, err)
	q := u.Query()
	q.Set("password", secret)
	u.RawQuery = q.Encode()
	s := startServer(t, serverOpts{Store: u.String(), Args: []string{"--log-level", "info"}})
	require.True(t, s.Healthy())
	log := s.Log()
	require.Contains(t, log, "coordinator serving")
	require.Contains(t, log, u.Host, "the store is still named")
	require.NotContains(t, log, secret)
}
