package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

var errNotInstalled = errors.New("fake: not installed")

type fakeServer struct {
	mu      sync.Mutex
	dir     string
	dbs     map[string]bool
	stopped int
}

func (f *fakeServer) CreateDB(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dbs[name] = true
	return "fake://" + name, nil
}

func (f *fakeServer) DropDB(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.dbs, name)
	return nil
}

func (f *fakeServer) Stop() error { f.stopped++; return nil }

func newHarness(startErr error) (*Harness[*fakeServer], *int) {
	starts := new(int)
	h := &Harness[*fakeServer]{
		Pkg:          "fake",
		Product:      "Fake",
		EnvRequire:   "DTX_TEST_REQUIRE_FAKE",
		InstallHint:  "install fake",
		NotInstalled: errNotInstalled,
		StartServer: func(_ context.Context, dir string) (*fakeServer, error) {
			*starts++
			if startErr != nil {
				return nil, startErr
			}
			return &fakeServer{dir: dir, dbs: map[string]bool{}}, nil
		},
	}
	return h, starts
}

func TestSharedDSNAndStop(t *testing.T) {
	h, starts := newHarness(nil)
	var name string
	t.Run("db", func(t *testing.T) {
		dsn := h.DSN(t)
		name = strings.TrimPrefix(dsn, "fake://")
		if !strings.HasPrefix(name, "t_") || len(name) != 2+16 {
			t.Fatalf("database name %q", name)
		}
		if other := h.DSN(t); other == dsn {
			t.Fatal("two DSN calls gave the same database")
		}
	})
	srv, err := h.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if *starts != 1 {
		t.Fatalf("%d starts, want 1", *starts)
	}
	if len(srv.dbs) != 0 {
		t.Fatalf("databases left after cleanup: %v", srv.dbs)
	}
	if _, err := os.Stat(srv.dir); err != nil {
		t.Fatal(err)
	}
	if err := h.StopShared(); err != nil {
		t.Fatal(err)
	}
	if srv.stopped != 1 {
		t.Fatalf("stopped %d times", srv.stopped)
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Fatalf("server directory left behind: %v", err)
	}
	if _, err := h.Shared(); err == nil {
		t.Fatal("shared server usable after StopShared")
	}
	if err := h.StopShared(); err != nil {
		t.Fatal(err)
	}
}

func TestStartPrivate(t *testing.T) {
	h, _ := newHarness(nil)
	var srv *fakeServer
	t.Run("private", func(t *testing.T) { srv = h.Start(t) })
	if srv.stopped != 1 {
		t.Fatalf("stopped %d times", srv.stopped)
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Fatalf("server directory left behind: %v", err)
	}
}

func TestNotInstalledSkips(t *testing.T) {
	h, _ := newHarness(fmt.Errorf("%w (test)", errNotInstalled))
	t.Setenv(h.EnvRequire, "")
	var skipped bool
	t.Run("dsn", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		h.DSN(t)
	})
	if !skipped {
		t.Fatal("DSN did not skip with a missing installation")
	}
}

func TestMissingPolicy(t *testing.T) {
	h, _ := newHarness(nil)
	notInstalled := fmt.Errorf("%w (test)", errNotInstalled)

	skip, msg := h.Missing(notInstalled, "")
	if !skip || !strings.Contains(msg, h.EnvRequire) {
		t.Fatalf("not required: skip=%v msg=%q", skip, msg)
	}
	skip, msg = h.Missing(notInstalled, "1")
	if skip || !strings.Contains(msg, h.EnvRequire) || !strings.Contains(msg, h.InstallHint) {
		t.Fatalf("required: skip=%v msg=%q", skip, msg)
	}
	if skip, _ = h.Missing(errors.New("boom"), ""); skip {
		t.Fatal("start-up failures other than a missing installation must fail, not skip")
	}
}
