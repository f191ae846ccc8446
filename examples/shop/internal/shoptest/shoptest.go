package shoptest

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// MustSQLite opens a new SQLite database in a temporary directory, closed
// when tb ends.
func MustSQLite(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sqlitedb.Open(context.Background(), filepath.Join(tb.TempDir(), "test.db"), 0)
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

// Logger discards everything.
func Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Call makes a branch call the way the coordinator does (POST, JSON body,
// Dtx-* headers) and returns the status code and body.
func Call(tb testing.TB, url, gid string, branch int, op dtx.Op, payload string) (int, string) {
	tb.Helper()
	code, body, err := TryCall(url, gid, branch, op, payload)
	require.NoError(tb, err)
	return code, body
}

// TryCall is Call for goroutines other than the test's: it returns the
// error instead of failing the test.
func TryCall(url, gid string, branch int, op dtx.Op, payload string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(dtx.HeaderGID, gid)
	req.Header.Set(dtx.HeaderBranch, strconv.Itoa(branch))
	req.Header.Set(dtx.HeaderOp, string(op))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Get fetches url and returns the status code and body.
func Get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp.StatusCode, string(body)
}

// MustCoordinator starts an in-process coordinator (SQLite store, HTTP
// transport, HTTP API) with fast retries and returns a client for it. It is
// stopped when tb ends.
func MustCoordinator(tb testing.TB) *client.Client {
	tb.Helper()
	return serveCoordinator(tb, httptransport.New(nil), "")
}

// MustAdminCoordinator is MustCoordinator with the admin actions (abort,
// retry) enabled: the server has an admin token and the client sends it.
func MustAdminCoordinator(tb testing.TB) *client.Client {
	tb.Helper()
	const token = "shoptest-admin-token"
	c := serveCoordinator(tb, httptransport.New(nil), "", server.WithAdminToken(token))
	c.AdminToken = token
	return c
}

// serveCoordinator runs a coordinator on a temporary SQLite store with tr
// and fast retries behind an HTTP API, all stopped when tb ends, and
// returns a client for it.
func serveCoordinator(tb testing.TB, tr dtx.Transport, owner string, opts ...server.Option) *client.Client {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "coordinator.db"), sqlstore.Config{})
	require.NoError(tb, err)
	c, err := coordinator.New(st, tr, coordinator.Config{
		Owner:     owner,
		RetryBase: 5 * time.Millisecond,
		RetryMax:  100 * time.Millisecond,
		Logger:    Logger(),
	})
	require.NoError(tb, err)
	require.NoError(tb, c.Start(ctx))
	srv := httptest.NewServer(server.New(c, opts...))
	tb.Cleanup(func() {
		srv.Close()
		c.Close(ctx)
		st.Close()
	})
	return client.ForURL(srv.URL, nil)
}

// MustShop starts a shop closed when tb ends. Empty fields of cfg get: Dir a
// temporary directory, Coordinator an in-process one (MustCoordinator),
// Logger a discarding one, and short timeouts.
func MustShop(tb testing.TB, cfg shop.Config) *shop.Shop {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	if cfg.Coordinator == nil && cfg.CoordinatorURL == "" {
		cfg.Coordinator = MustCoordinator(tb)
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	if cfg.BranchTimeout == 0 {
		cfg.BranchTimeout = 2 * time.Second
	}
	if cfg.SagaTimeout == 0 {
		cfg.SagaTimeout = 30 * time.Second
	}
	s, err := shop.Start(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(tb, s.Close(ctx))
	})
	return s
}
