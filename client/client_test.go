package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// setup starts a participant answering behave(path) (200 when nil), a
// coordinator on a fresh SQLite store and its API, and returns a client for
// it and the participant's base URL.
func setup(t *testing.T, behave func(path string) int) (*client.Client, string) {
	t.Helper()
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code := http.StatusOK
		if behave != nil {
			code = behave(r.URL.Path)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(part.Close)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		LeaseTTL: 2 * time.Second, RecoverInterval: 50 * time.Millisecond,
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	api := httptest.NewServer(server.New(c, server.WithAdminToken(adminToken)))
	t.Cleanup(api.Close)
	cl := client.ForURL(api.URL+"/", nil)
	cl.WaitTimeout = 5 * time.Second
	cl.AdminToken = adminToken
	return cl, part.URL
}

const adminToken = "client-test-admin-token"

func twoSteps(base, gid string) saga.Spec {
	return saga.Spec{GID: gid, Steps: []saga.Step{
		{Name: "reserve", Action: base + "/reserve", Compensate: base + "/release", Payload: json.RawMessage(`{"qty":1}`)},
		{Name: "charge", Action: base + "/charge", Compensate: base + "/refund"},
	}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClient_SubmitWaitGetList(t *testing.T) {
	cl, base := setup(t, func(path string) int {
		if path == "/fail" {
			return http.StatusConflict
		}
		return http.StatusOK
	})
	require.NoError(t, cl.Health(ctx(t)))

	d, err := cl.SubmitSaga(ctx(t), twoSteps(base, "c-1"), true)
	require.NoError(t, err)
	require.Equal(t, "c-1", d.GID)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Len(t, d.Branches, 2)
	require.Equal(t, dtx.BranchSucceeded, d.Branches[1].Action)

	// Idempotent resubmission.
	again, err := cl.SubmitSaga(ctx(t), twoSteps(base, "c-1"), false)
	require.NoError(t, err)
	require.Equal(t, d.Digest, again.Digest)
	require.Equal(t, dtx.StatusSucceeded, again.Status)

	// Conflicting resubmission.
	other := twoSteps(base, "c-1")
	other.Steps[1].Payload = json.RawMessage(`{"amount":10}`)
	_, err = cl.SubmitSaga(ctx(t), other, false)
	require.ErrorIs(t, err, dtx.ErrConflict)

	// Invalid saga.
	_, err = cl.SubmitSaga(ctx(t), saga.Spec{GID: "c-bad"}, true)
	require.ErrorIs(t, err, dtx.ErrInvalid)
	var apiErr *client.APIError
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusBadRequest, apiErr.Status)
	require.Contains(t, apiErr.Detail, "at least one step")
	require.Contains(t, err.Error(), "HTTP 400")

	failing := saga.Spec{GID: "c-2", Steps: []saga.Step{{Action: base + "/fail", Compensate: base + "/undo"}}}
	f, err := cl.SubmitSaga(ctx(t), failing, true)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, f.Status)

	g, err := cl.Get(ctx(t), "c-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, g.Status)
	require.NotEmpty(t, g.Events)
	_, err = cl.Get(ctx(t), "missing")
	require.ErrorIs(t, err, dtx.ErrNotFound)
	require.NotErrorIs(t, err, dtx.ErrConflict)

	all, err := cl.List(ctx(t), dtx.ListFilter{})
	require.NoError(t, err)
	require.Len(t, all.Transactions, 2)
	require.Equal(t, 1, all.Counts[dtx.StatusSucceeded])
	require.Equal(t, 1, all.Counts[dtx.StatusFailed])

	onlyFailed, err := cl.List(ctx(t), dtx.ListFilter{Status: dtx.StatusFailed, Limit: 10})
	require.NoError(t, err)
	require.Len(t, onlyFailed.Transactions, 1)
	require.Equal(t, "c-2", onlyFailed.Transactions[0].GID)

	// Paging backwards from the newest transaction leaves the older one.
	page, err := cl.List(ctx(t), dtx.ListFilter{Before: all.Transactions[0].CreatedAt})
	require.NoError(t, err)
	require.Len(t, page.Transactions, 1)
	require.Equal(t, all.Transactions[1].GID, page.Transactions[0].GID)

	// Pattern, since and gid search reach the server.
	found, err := cl.List(ctx(t), dtx.ListFilter{Pattern: dtx.PatternSaga, GIDContains: "-2", Since: all.Transactions[1].CreatedAt})
	require.NoError(t, err)
	require.Len(t, found.Transactions, 1)
	require.Equal(t, "c-2", found.Transactions[0].GID)
	none, err := cl.List(ctx(t), dtx.ListFilter{Pattern: dtx.PatternTCC})
	require.NoError(t, err)
	require.Empty(t, none.Transactions)

	_, err = cl.List(ctx(t), dtx.ListFilter{Status: "weird"})
	require.ErrorIs(t, err, dtx.ErrInvalid)
}

func TestClient_SubmitWithoutWait(t *testing.T) {
	cl, base := setup(t, nil)
	d, err := cl.SubmitSaga(ctx(t), twoSteps(base, ""), false)
	require.NoError(t, err)
	require.NotEmpty(t, d.GID)
	require.Eventually(t, func() bool {
		g, err := cl.Get(ctx(t), d.GID)
		return err == nil && g.Status == dtx.StatusSucceeded
	}, 5*time.Second, 10*time.Millisecond)
}

func TestClient_Abort(t *testing.T) {
	release := make(chan struct{})
	cl, base := setup(t, func(path string) int {
		if path == "/charge" {
			<-release
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	_, err := cl.SubmitSaga(ctx(t), twoSteps(base, "ab-1"), false)
	require.NoError(t, err)

	d, err := cl.Abort(ctx(t), "ab-1", "changed my mind")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusCompensating, d.Status)
	close(release)
	released = true

	require.Eventually(t, func() bool {
		g, err := cl.Get(ctx(t), "ab-1")
		return err == nil && g.Status == dtx.StatusFailed
	}, 5*time.Second, 10*time.Millisecond)
	g, err := cl.Get(ctx(t), "ab-1")
	require.NoError(t, err)
	require.Equal(t, "changed my mind", g.Reason)

	_, err = cl.Abort(ctx(t), "ab-1", "")
	require.ErrorIs(t, err, dtx.ErrConflict, "finished")
	_, err = cl.Abort(ctx(t), "nope", "")
	require.ErrorIs(t, err, dtx.ErrNotFound)
	var apiErr *client.APIError
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	require.NotEmpty(t, apiErr.Detail)
}

func TestClient_Errors(t *testing.T) {
	t.Run("PlainTextError", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream exploded", http.StatusBadGateway)
		}))
		defer srv.Close()
		err := client.ForURL(srv.URL, nil).Health(ctx(t))
		var apiErr *client.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusBadGateway, apiErr.Status)
		require.Equal(t, "upstream exploded", apiErr.Detail)
		require.NotErrorIs(t, err, dtx.ErrNotFound)
		require.NotErrorIs(t, err, dtx.ErrConflict)
		require.NotErrorIs(t, err, dtx.ErrInvalid)
	})
	t.Run("404WithoutTransactionProblemIsNotNotFound", func(t *testing.T) {
		// A wrong base URL, a proxy or another service answering 404 must
		// not read as "no such transaction" (callers presume abort on it).
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		_, err := client.ForURL(srv.URL, nil).Get(ctx(t), "g-1")
		var apiErr *client.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusNotFound, apiErr.Status)
		require.NotErrorIs(t, err, dtx.ErrNotFound)
	})
	t.Run("Unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()
		err := client.ForURL(addr, nil).Health(ctx(t))
		require.Error(t, err)
		var apiErr *client.APIError
		require.False(t, errors.As(err, &apiErr))
	})
	t.Run("BadResponseBody", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("not json"))
		}))
		defer srv.Close()
		_, err := client.ForURL(srv.URL, nil).Get(ctx(t), "x")
		require.ErrorContains(t, err, "decode response")
	})
}

func TestClient_RetryAttentionAndAdminToken(t *testing.T) {
	cl, base := setup(t, func(path string) int {
		if path == "/charge" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	_, err := cl.SubmitSaga(ctx(t), twoSteps(base, "cr-1"), false)
	require.NoError(t, err)
	var att *api.AttentionResponse
	require.Eventually(t, func() bool {
		att, err = cl.Attention(ctx(t), client.AttentionFilter{MinAttempts: 2, OlderThan: -1})
		require.NoError(t, err)
		return len(att.Transactions) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "cr-1", att.Transactions[0].GID)
	require.Contains(t, att.Transactions[0].Why[0], "charge")
	require.Zero(t, att.OlderThan)

	res, err := cl.Retry(ctx(t), "cr-1")
	require.NoError(t, err)
	require.Equal(t, "cr-1", res.GID)

	_, err = cl.Retry(ctx(t), "missing")
	require.ErrorIs(t, err, dtx.ErrNotFound)

	// Without the token the admin actions are refused.
	cl.AdminToken = ""
	_, err = cl.Retry(ctx(t), "cr-1")
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)
	_, err = cl.Abort(ctx(t), "cr-1", "")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusUnauthorized, apiErr.Status)
}

func TestClient_WithTraceParent(t *testing.T) {
	cl, base := setup(t, nil)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	d, err := cl.SubmitSaga(client.WithTraceParent(ctx(t), tp), twoSteps(base, "ct-1"), true)
	require.NoError(t, err)
	var spec saga.Spec
	require.NoError(t, json.Unmarshal(d.Spec, &spec))
	require.Equal(t, tp, spec.TraceParent)
}

// TestClient_ForcedAbort: a saga past its pivot whose step keeps failing
// cannot be compensated (409), and a forced abort needs an operator
// (400); forced by one, it is failed with the branch left for a human,
// and cannot be forced again (409).
func TestClient_ForcedAbort(t *testing.T) {
	cl, base := setup(t, func(path string) int {
		if path == "/ship" {
			return http.StatusServiceUnavailable // retried forever
		}
		return http.StatusOK
	})
	spec := saga.Spec{GID: "force-1", Steps: []saga.Step{{Name: "ship", Action: base + "/ship"}}}
	_, err := cl.SubmitSaga(ctx(t), spec, false)
	require.NoError(t, err)

	var ae *client.APIError
	_, err = cl.AbortWith(ctx(t), "force-1", api.AbortRequest{Reason: "stop"})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusConflict, ae.Status)
	require.Contains(t, ae.Detail, "forced abort")
	_, err = cl.AbortWith(ctx(t), "force-1", api.AbortRequest{Force: true})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadRequest, ae.Status)
	require.Contains(t, ae.Detail, "operator")
	_, err = cl.AbortWith(ctx(t), "force-1", api.AbortRequest{Force: true, Operator: "al\x1bice"})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadRequest, ae.Status)

	res, err := cl.AbortWith(ctx(t), "force-1", api.AbortRequest{Force: true, Operator: "alice", Reason: "carrier gone"})
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, res.Status)
	require.Contains(t, res.Reason, `aborted by operator "alice"`)
	require.Contains(t, res.Reason, "carrier gone")
	require.Len(t, res.Unresolved, 1)
	require.Equal(t, "ship", res.Unresolved[0].Name)
	require.Contains(t, res.Unresolved[0].Why, "outcome unknown")
	require.NotEmpty(t, res.Events, "a forced abort answers with the history")

	_, err = cl.AbortWith(ctx(t), "force-1", api.AbortRequest{Force: true, Operator: "alice"})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusConflict, ae.Status)
	require.Contains(t, ae.Detail, "already finished")
}
