package mariadbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// EnvRequire is the environment variable that, set to "1", turns a missing
// MariaDB installation from a skipped test into a failed one.
const EnvRequire = "DTX_REQUIRE_MARIADB"

var shared struct {
	once sync.Once
	mu   sync.Mutex
	srv  *Server
	dir  string
	err  error
}

// sharedServer starts the per-binary server on first use.
func sharedServer() (*Server, error) {
	shared.once.Do(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		dir, err := os.MkdirTemp("", "dtx-mariadbtest-")
		if err != nil {
			shared.err = fmt.Errorf("mariadbtest: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := StartServer(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			shared.err = err
			return
		}
		shared.srv, shared.dir = srv, dir
	})
	return shared.srv, shared.err
}

// DSN returns the go-sql-driver/mysql DSN of a new, empty database on the
// test binary's shared server (started on first use), dropped when tb ends:
//
//	root@tcp(127.0.0.1:PORT)/t_<random>?clientFoundRows=true&multiStatements=true
//
// If MariaDB is not installed, DSN skips tb, or fails it when the
// environment variable DTX_REQUIRE_MARIADB is "1". Any other start-up
// problem fails tb.
func DSN(tb testing.TB) string {
	tb.Helper()
	srv, err := sharedServer()
	if err != nil {
		if skip, msg := missing(err, os.Getenv(EnvRequire)); skip {
			tb.Skip(msg)
		} else {
			tb.Fatal(msg)
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := srv.CreateDB(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.DropDB(ctx, name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return dsn
}

// Start starts a server for tb alone, stopped and removed when tb ends, with
// DSN's policy for a missing installation. It suits a package whose
// TestMain already belongs to another harness (pgtest.Main), where the
// shared server could not be stopped at the end; it costs a server start
// (about two seconds) per call.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := findBinaries(); err != nil {
		if skip, msg := missing(err, os.Getenv(EnvRequire)); skip {
			tb.Skip(msg)
		} else {
			tb.Fatal(msg)
		}
	}
	dir, err := os.MkdirTemp("", "dtx-mariadbtest-")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Error(err)
		}
		os.RemoveAll(dir)
	})
	return srv
}

// missing decides what DSN does with a start-up error: skip (only for a
// missing installation when not required) or fail, and with which message.
func missing(err error, require string) (skip bool, msg string) {
	if errors.Is(err, ErrNotInstalled) {
		if require == "1" {
			return false, fmt.Sprintf("%v; %s=1 requires MariaDB tests to run (install mariadb-server or set %s)", err, EnvRequire, EnvBinDir)
		}
		return true, fmt.Sprintf("skipping MariaDB test: %v (set %s=1 to make this a failure)", err, EnvRequire)
	}
	return false, err.Error()
}

// Main runs the tests and then stops the shared server, if one was started,
// and removes its files. Use it as a package's TestMain:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil {
		return nil
	}
	err := shared.srv.Stop()
	os.RemoveAll(shared.dir)
	shared.srv = nil
	shared.err = errors.New("mariadbtest: shared server already stopped")
	return err
}
