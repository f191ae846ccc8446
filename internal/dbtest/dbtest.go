// Package dbtest holds the harness logic shared by internal/pgtest and
// internal/mariadbtest: one server per test binary started on first use,
// a fresh database per test, a private server per test, stopping the shared
// server at the end of the run, and the policy for a missing installation
// (skip, or fail when the product's "require" variable is "1").
package dbtest

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

// Server is a running database server as the harness needs it.
type Server interface {
	// CreateDB creates an empty database and returns its DSN.
	CreateDB(ctx context.Context, name string) (string, error)
	// DropDB drops a database; a missing one is not an error.
	DropDB(ctx context.Context, name string) error
	// Stop shuts the server down; it is safe to call more than once.
	Stop() error
}

// Harness runs servers of one product for tests. Its fields must be set
// before first use and not changed afterwards; use it through a pointer.
type Harness[S Server] struct {
	// Pkg prefixes errors and names temporary directories ("pgtest").
	Pkg string
	// Product is the product's name in messages ("PostgreSQL").
	Product string
	// EnvRequire names the variable that, set to "1", turns a missing
	// installation from a skipped test into a failed one.
	EnvRequire string
	// InstallHint tells how to fix a missing installation.
	InstallHint string
	// NotInstalled is the sentinel (matched with errors.Is) of a missing
	// installation.
	NotInstalled error
	// TempBase, if set, gives the directory to create server directories
	// in; else the usual temporary directory.
	TempBase func() string
	// Check, if set, reports quickly whether the product is installed
	// (Start calls it before creating anything).
	Check func() error
	// StartServer starts a server in dir; ctx bounds the start-up only.
	StartServer func(ctx context.Context, dir string) (S, error)

	once   sync.Once
	mu     sync.Mutex
	shared S
	ok     bool // shared is a running server
	dir    string
	err    error
}

// StartTimeout bounds a server's start-up; DBTimeout bounds creating or
// dropping one database.
const (
	StartTimeout = 2 * time.Minute
	DBTimeout    = 30 * time.Second
)

func (h *Harness[S]) tempDir() (string, error) {
	base := ""
	if h.TempBase != nil {
		base = h.TempBase()
	}
	dir, err := os.MkdirTemp(base, "dtx-"+h.Pkg+"-")
	if err != nil {
		return "", fmt.Errorf("%s: %w", h.Pkg, err)
	}
	return dir, nil
}

// start starts a server in a new temporary directory, removed on failure.
func (h *Harness[S]) start() (S, string, error) {
	var zero S
	dir, err := h.tempDir()
	if err != nil {
		return zero, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	srv, err := h.StartServer(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return zero, "", err
	}
	return srv, dir, nil
}

// Shared returns the test binary's shared server, starting it on first use.
func (h *Harness[S]) Shared() (S, error) {
	h.once.Do(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.shared, h.dir, h.err = h.start()
		h.ok = h.err == nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.shared, h.err
}

// Missing decides what to do with a start-up error: skip (only for a
// missing installation when require is not "1") or fail, and with which
// message.
func (h *Harness[S]) Missing(err error, require string) (skip bool, msg string) {
	if errors.Is(err, h.NotInstalled) {
		if require == "1" {
			return false, fmt.Sprintf("%v; %s=1 requires %s tests to run (%s)", err, h.EnvRequire, h.Product, h.InstallHint)
		}
		return true, fmt.Sprintf("skipping %s test: %v (set %s=1 to make this a failure)", h.Product, err, h.EnvRequire)
	}
	return false, err.Error()
}

func (h *Harness[S]) abort(tb testing.TB, err error) {
	tb.Helper()
	if skip, msg := h.Missing(err, os.Getenv(h.EnvRequire)); skip {
		tb.Skip(msg)
	} else {
		tb.Fatal(msg)
	}
}

// DSN returns the DSN of a new, empty database t_<random hex> on the shared
// server, dropped when tb ends. A start-up error skips or fails tb as
// Missing decides.
func (h *Harness[S]) DSN(tb testing.TB) string {
	tb.Helper()
	srv, err := h.Shared()
	if err != nil {
		h.abort(tb, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), DBTimeout)
	defer cancel()
	dsn, err := srv.CreateDB(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DBTimeout)
		defer cancel()
		if err := srv.DropDB(ctx, name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return dsn
}

// Start starts a server for tb alone, stopped and removed when tb ends,
// with DSN's policy for a missing installation.
func (h *Harness[S]) Start(tb testing.TB) S {
	tb.Helper()
	if h.Check != nil {
		if err := h.Check(); err != nil {
			h.abort(tb, err)
		}
	}
	srv, dir, err := h.start()
	if err != nil {
		h.abort(tb, err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Error(err)
		}
		os.RemoveAll(dir)
	})
	return srv
}

// Main runs the tests, then stops the shared server, if one was started,
// and removes its files; it exits with the tests' code, or 1 if they passed
// but stopping failed.
func (h *Harness[S]) Main(m *testing.M) {
	code := m.Run()
	if err := h.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// StopShared stops the shared server, if one was started, and removes its
// files. Later uses of the shared server fail.
func (h *Harness[S]) StopShared() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ok {
		return nil
	}
	err := h.shared.Stop()
	os.RemoveAll(h.dir)
	var zero S
	h.shared, h.ok = zero, false
	h.err = fmt.Errorf("%s: shared server already stopped", h.Pkg)
	return err
}
