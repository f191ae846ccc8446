package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/tcc"
)

func problemType(t *testing.T, r response) string {
	t.Helper()
	var p problem.Details
	require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	return p.Type
}

// doAuth sends a request with the given Authorization header (none if
// empty).
func (e *env) doAuth(t *testing.T, method, path, auth string) (response, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: data}, resp.Header
}

func TestAdmin_WithoutTokenReadOnly(t *testing.T) {
	e := newEnvWith(t, nil) // no admin token configured
	e.token = ""
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("ro-1")).code, "submissions need no token")
	require.Equal(t, http.StatusOK, e.do(t, "GET", "/v1/transactions", nil).code)
	require.Equal(t, http.StatusOK, e.do(t, "GET", "/v1/transactions/ro-1", nil).code)
	require.Equal(t, http.StatusOK, e.do(t, "GET", "/v1/attention", nil).code)
	for _, action := range []string{"abort", "retry"} {
		for _, auth := range []string{"", "Bearer anything"} {
			r, _ := e.doAuth(t, "POST", "/v1/transactions/ro-1/"+action, auth)
			requireProblem(t, r, http.StatusForbidden, "admin-token")
			require.Equal(t, problem.TypeAdminDisabled, problemType(t, r))
		}
	}
}

func TestAdmin_TokenRequired(t *testing.T) {
	e := newEnv(t, nil)
	for _, action := range []string{"abort", "retry"} {
		path := "/v1/transactions/missing/" + action
		for _, auth := range []string{"", "Bearer", "Bearer ", "Basic " + testToken, "Bearer wrong", "Bearer " + testToken + "x", testToken} {
			r, h := e.doAuth(t, "POST", path, auth)
			requireProblem(t, r, http.StatusUnauthorized)
			require.Equal(t, problem.TypeUnauthorized, problemType(t, r))
			require.Contains(t, h.Get("WWW-Authenticate"), "Bearer", "auth %q", auth)
		}
		// The right token passes (the scheme is case-insensitive): the
		// transaction does not exist.
		for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken} {
			r, _ := e.doAuth(t, "POST", path, auth)
			requireProblem(t, r, http.StatusNotFound, "not found")
			require.Equal(t, problem.TypeTransactionNotFound, problemType(t, r))
		}
	}
}

func TestRetry(t *testing.T) {
	var charges atomic.Int32
	e := newEnvCfg(t, func(path string) int {
		if path == "/charge" && charges.Add(1) == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}, coordinator.Config{RetryBase: time.Hour, RetryMax: time.Hour}, server.WithAdminToken(testToken))
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas", e.spec("rt-1")).code)

	// Once the first charge has failed, it waits an hour, unless retried.
	var rr api.RetryResponse
	require.Eventually(t, func() bool {
		r := e.do(t, "POST", "/v1/transactions/rt-1/retry", nil)
		require.Equal(t, http.StatusAccepted, r.code, "body: %s", r.body)
		require.NoError(t, json.Unmarshal(r.body, &rr))
		return rr.Retried == 1
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "rt-1", rr.GID)
	require.Len(t, rr.Branches, 2)
	require.Eventually(t, func() bool {
		return e.do(t, "GET", "/v1/transactions/rt-1", nil).detail(t).Status == dtx.StatusSucceeded
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, int32(2), charges.Load())

	requireProblem(t, e.do(t, "POST", "/v1/transactions/rt-1/retry", nil), http.StatusConflict, "finished")
	r := e.do(t, "POST", "/v1/transactions/nope/retry", nil)
	requireProblem(t, r, http.StatusNotFound)
	require.Equal(t, problem.TypeTransactionNotFound, problemType(t, r))
}

func TestAttention(t *testing.T) {
	e := newEnv(t, func(path string) int {
		if path == "/stuck" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	require.Equal(t, dtx.StatusSucceeded, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("fine")).detail(t).Status)
	stuck := saga.Spec{GID: "stuck", Steps: []saga.Step{
		{Name: "reserve", Action: e.part.URL + "/reserve", Compensate: e.part.URL + "/release"},
		{Name: "pay", Action: e.part.URL + "/stuck", Compensate: e.part.URL + "/refund"},
	}}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas", stuck).code)

	var a api.AttentionResponse
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/v1/attention?min_attempts=3&older_than=0", nil)
		require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
		a = api.AttentionResponse{}
		require.NoError(t, json.Unmarshal(r.body, &a))
		return len(a.Transactions) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 3, a.MinAttempts)
	require.Zero(t, a.OlderThan)
	it := a.Transactions[0]
	require.Equal(t, "stuck", it.GID)
	require.Equal(t, dtx.StatusRunning, it.Status)
	require.Len(t, it.Branches, 2)
	require.Len(t, it.Why, 1)
	require.Contains(t, it.Why[0], "branch 1 (pay) action: still pending after")
	require.Contains(t, it.Why[0], "HTTP 503")

	// By age alone: every unfinished transaction older than 1ms, finished
	// ones never.
	r := e.do(t, "GET", "/v1/attention?min_attempts=0&older_than=1ms", nil)
	require.Equal(t, http.StatusOK, r.code)
	a = api.AttentionResponse{}
	require.NoError(t, json.Unmarshal(r.body, &a))
	require.Len(t, a.Transactions, 1)
	require.Len(t, a.Transactions[0].Why, 1)
	require.Contains(t, a.Transactions[0].Why[0], "running for")

	// Defaults: 5 calls, 5 minutes.
	r = e.do(t, "GET", "/v1/attention", nil)
	require.NoError(t, json.Unmarshal(r.body, &a))
	require.Equal(t, server.DefaultAttentionAttempts, a.MinAttempts)
	require.Equal(t, dtx.Duration(5*time.Minute), a.OlderThan)

	for _, q := range []struct{ query, want string }{
		{"?min_attempts=-1", "min_attempts"},
		{"?min_attempts=x", "min_attempts"},
		{"?older_than=5", "older_than"},
		{"?older_than=-1s", "older_than"},
		{"?limit=0", "limit"},
		{"?min_attempts=0&older_than=0", "both criteria"},
	} {
		requireProblem(t, e.do(t, "GET", "/v1/attention"+q.query, nil), http.StatusBadRequest, q.want)
	}
}

// headerRecorder is a participant that records the traceparent of every
// call.
type headerRecorder struct {
	mu  sync.Mutex
	got []string
}

func (h *headerRecorder) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.got = append(h.got, r.Header.Get("traceparent"))
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (h *headerRecorder) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.got
	h.got = nil
	return out
}

// parseTP reads a traceparent with OpenTelemetry's W3C propagator.
func parseTP(t *testing.T, h string) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": h})
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid(), "traceparent %q", h)
	return sc
}

func TestTraceParentFromRequestHeader(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	parent := parseTP(t, tp)
	e := newEnv(t, nil)
	rec := &headerRecorder{}
	part := rec.serve(t)

	post := func(path string, body any, header string) response {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", e.api.URL+path, strings.NewReader(string(raw)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set("traceparent", header)
		}
		resp, err := e.api.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return response{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: data}
	}
	requireTrace := func(headers []string, n int) {
		t.Helper()
		require.Len(t, headers, n)
		for _, h := range headers {
			require.Equal(t, parent.TraceID(), parseTP(t, h).TraceID(), "the caller's trace")
		}
	}

	sg := saga.Spec{GID: "tp-saga", Steps: []saga.Step{
		{Action: part.URL + "/a", Compensate: part.URL + "/a-undo"},
		{Action: part.URL + "/b", Compensate: part.URL + "/b-undo"},
	}}
	r := post("/v1/sagas?wait=true", sg, tp)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	requireTrace(rec.take(), 2)
	// The trace context is kept with the transaction, for recovery.
	var stored saga.Spec
	require.NoError(t, json.Unmarshal(r.detail(t).Spec, &stored))
	require.Equal(t, tp, stored.TraceParent)
	// A resubmission from another span is the same saga.
	r = post("/v1/sagas", sg, "00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01")
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)

	tc := tcc.Spec{GID: "tp-tcc", Participants: []tcc.Participant{
		{Name: "x", Try: part.URL + "/x", Confirm: part.URL + "/x-ok", Cancel: part.URL + "/x-no"},
	}}
	r = post("/v1/tcc?wait=true", tc, tp)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	requireTrace(rec.take(), 2)

	// A malformed header is ignored (W3C Trace Context), not an error.
	sg.GID = "tp-bad-header"
	r = post("/v1/sagas?wait=true", sg, "00-xyz")
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	require.Equal(t, []string{"", ""}, rec.take())

	// One in the body is explicit: malformed is a 400.
	sg.GID, sg.TraceParent = "tp-bad-body", "garbage"
	requireProblem(t, post("/v1/sagas", sg, ""), http.StatusBadRequest, "traceparent")
}
