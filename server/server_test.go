package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

type env struct {
	api  *httptest.Server
	part *httptest.Server
	c    *coordinator.Coordinator
	srv  *server.Server
	// token is sent as the bearer token with every request (empty: none).
	token string
}

// testToken is the admin token of newEnv's server.
const testToken = "test-admin-token-0123456789"

// newEnv starts a coordinator on a fresh SQLite store, its API (admin
// token testToken, metrics on), and a participant that answers
// behave(path) (200 when nil).
func newEnv(t *testing.T, behave func(path string) int) *env {
	return newEnvWith(t, behave, server.WithAdminToken(testToken))
}

func newEnvWith(t *testing.T, behave func(path string) int, opts ...server.Option) *env {
	return newEnvCfg(t, behave, coordinator.Config{
		LeaseTTL: 2 * time.Second, RecoverInterval: 50 * time.Millisecond,
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	}, opts...)
}

func newEnvCfg(t *testing.T, behave func(path string) int, cfg coordinator.Config, opts ...server.Option) *env {
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
	c, err := coordinator.New(st, httptransport.New(nil), cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	srv := server.New(c, opts...)
	api := httptest.NewServer(srv)
	t.Cleanup(api.Close)
	return &env{api: api, part: part, c: c, srv: srv, token: testToken}
}

func (e *env) spec(gid string) saga.Spec {
	return saga.Spec{GID: gid, Steps: []saga.Step{
		{Name: "reserve", Action: e.part.URL + "/reserve", Compensate: e.part.URL + "/release", Payload: json.RawMessage(`{"qty":1}`)},
		{Name: "charge", Action: e.part.URL + "/charge", Compensate: e.part.URL + "/refund"},
	}}
}

type response struct {
	code int
	ct   string
	body []byte
}

func (e *env) do(t *testing.T, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.api.URL+path, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: data}
}

func (r response) detail(t *testing.T) dtx.TxDetail {
	t.Helper()
	require.Equal(t, "application/json", r.ct, "body: %s", r.body)
	var d dtx.TxDetail
	require.NoError(t, json.Unmarshal(r.body, &d), "body: %s", r.body)
	return d
}

// requireProblem checks an error answer: status, problem+json, a non-empty
// detail containing each of want.
func requireProblem(t *testing.T, r response, code int, want ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "body: %s", r.body)
	require.Equal(t, "application/problem+json", r.ct)
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	require.Equal(t, code, p.Status)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	for _, w := range want {
		require.Contains(t, p.Detail, w)
	}
}

func TestSubmit_WaitSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(t, "POST", "/v1/sagas?wait=true&timeout=5s", e.spec("order-1"))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	d := r.detail(t)
	require.Equal(t, "order-1", d.GID)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, dtx.PatternSaga, d.Pattern)
	require.Len(t, d.Branches, 2)
	for _, b := range d.Branches {
		require.Equal(t, dtx.BranchSucceeded, b.Action)
		require.Equal(t, dtx.BranchPending, b.Compensate)
	}

	// The same gid and content again: the existing transaction, 200.
	again := e.do(t, "POST", "/v1/sagas", e.spec("order-1"))
	require.Equal(t, http.StatusOK, again.code, "body: %s", again.body)
	d2 := again.detail(t)
	require.Equal(t, d.GID, d2.GID)
	require.Equal(t, d.Digest, d2.Digest)
	// The store keeps millisecond precision.
	require.WithinDuration(t, d.CreatedAt, d2.CreatedAt, time.Millisecond)
	require.Equal(t, dtx.StatusSucceeded, d2.Status)

	// The same gid with other content: 409.
	other := e.spec("order-1")
	other.Steps[0].Payload = json.RawMessage(`{"qty":2}`)
	requireProblem(t, e.do(t, "POST", "/v1/sagas", other), http.StatusConflict, "order-1")
}

func TestSubmit_WithoutWait(t *testing.T) {
	e := newEnv(t, nil)
	spec := e.spec("")
	r := e.do(t, "POST", "/v1/sagas", spec)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	d := r.detail(t)
	require.NotEmpty(t, d.GID, "a gid is generated")
	require.Len(t, d.Branches, 2)
	require.Eventually(t, func() bool {
		g := e.do(t, "GET", "/v1/transactions/"+url.PathEscape(d.GID), nil)
		return g.code == http.StatusOK && g.detail(t).Status == dtx.StatusSucceeded
	}, 5*time.Second, 10*time.Millisecond)
}

func TestSubmit_FailedSagaIsCompensated(t *testing.T) {
	e := newEnv(t, func(path string) int {
		if path == "/charge" {
			return http.StatusConflict
		}
		return http.StatusOK
	})
	r := e.do(t, "POST", "/v1/sagas?wait=1", e.spec("order-f"))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	d := r.detail(t)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "step 1 (charge) failed")
}

func TestSubmit_BadRequests(t *testing.T) {
	e := newEnv(t, nil)
	valid, err := json.Marshal(e.spec("bad-1"))
	require.NoError(t, err)
	badURL := e.spec("bad-2")
	badURL.Steps[1].Action = "ftp://nowhere/charge"
	unserved := e.spec("bad-6") // a broker step, but the coordinator calls HTTP only
	unserved.Steps[0].Compensate = "broker://inventory"
	tests := []struct {
		name string
		path string
		body any
		want []string
	}{
		{name: "MalformedJSON", body: `{"steps": [`, want: []string{"JSON"}},
		{name: "NotAnObject", body: `[1,2]`, want: []string{"JSON"}},
		{name: "WrongType", body: `{"steps": "many"}`, want: []string{"JSON"}},
		{name: "UnknownField", body: `{"gid":"x","stepz":[]}`, want: []string{"stepz"}},
		{name: "TrailingObject", body: string(valid) + ` {}`, want: []string{"trailing"}},
		{name: "TrailingGarbage", body: string(valid) + `xyz`, want: []string{"trailing"}},
		{name: "TrailingBrace", body: string(valid) + `}`, want: []string{"trailing"}},
		{name: "TrailingBracket", body: string(valid) + "\n]", want: []string{"trailing"}},
		{name: "EmptyBody", body: ``, want: []string{"empty"}},
		{name: "InvalidURL", body: badURL, want: []string{"step 1 (charge)", "http or https"}},
		{name: "UnservedScheme", body: unserved, want: []string{"step 0", `"broker://inventory" must be http or https`}},
		{name: "NoSteps", body: `{"gid":"x"}`, want: []string{"at least one step"}},
		{name: "BadGID", body: `{"gid":"a/b","steps":[{"action":"http://h/x"}]}`, want: []string{"gid"}},
		{name: "WaitMaybe", path: "/v1/sagas?wait=maybe", body: e.spec("bad-3"), want: []string{"wait"}},
		{name: "BadWaitTimeout", path: "/v1/sagas?wait=true&timeout=forever", body: e.spec("bad-4"), want: []string{"timeout"}},
		{name: "WaitTimeoutTooLong", path: "/v1/sagas?wait=true&timeout=1h", body: e.spec("bad-5"), want: []string{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/sagas"
			}
			requireProblem(t, e.do(t, "POST", path, tt.body), http.StatusBadRequest, tt.want...)
		})
	}
	// Nothing was recorded by the rejected requests.
	for _, gid := range []string{"bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "x"} {
		requireProblem(t, e.do(t, "GET", "/v1/transactions/"+gid, nil), http.StatusNotFound)
	}
}

func TestSubmit_BodyTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"gid":"big","steps":[{"action":"http://h/x","payload":"` + strings.Repeat("x", server.MaxBody) + `"}]}`
	requireProblem(t, e.do(t, "POST", "/v1/sagas", body), http.StatusBadRequest, "larger than")
}

func TestGet(t *testing.T) {
	e := newEnv(t, nil)
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("get-1")).code)
	r := e.do(t, "GET", "/v1/transactions/get-1", nil)
	require.Equal(t, http.StatusOK, r.code)
	d := r.detail(t)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Len(t, d.Branches, 2)
	require.NotEmpty(t, d.Events, "history is included")
	var spec saga.Spec
	require.NoError(t, json.Unmarshal(d.Spec, &spec))
	require.Equal(t, "reserve", spec.Steps[0].Name)

	requireProblem(t, e.do(t, "GET", "/v1/transactions/no-such-gid", nil), http.StatusNotFound)
}

func TestList(t *testing.T) {
	e := newEnv(t, func(path string) int {
		if path == "/fail" {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	for i := range 3 {
		require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec(fmt.Sprintf("ok-%d", i))).code)
	}
	failing := saga.Spec{GID: "ko-1", Steps: []saga.Step{{Action: e.part.URL + "/fail", Compensate: e.part.URL + "/undo"}}}
	r := e.do(t, "POST", "/v1/sagas?wait=true", failing)
	require.Equal(t, dtx.StatusFailed, r.detail(t).Status)

	list := func(query string) api.ListResponse {
		t.Helper()
		r := e.do(t, "GET", "/v1/transactions"+query, nil)
		require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
		require.Equal(t, "application/json", r.ct)
		var lr api.ListResponse
		require.NoError(t, json.Unmarshal(r.body, &lr))
		return lr
	}
	all := list("")
	require.Len(t, all.Transactions, 4)
	require.Equal(t, 3, all.Counts[dtx.StatusSucceeded])
	require.Equal(t, 1, all.Counts[dtx.StatusFailed])
	for i := 1; i < len(all.Transactions); i++ {
		require.False(t, all.Transactions[i].CreatedAt.After(all.Transactions[i-1].CreatedAt), "newest first")
	}

	failed := list("?status=failed")
	require.Len(t, failed.Transactions, 1)
	require.Equal(t, "ko-1", failed.Transactions[0].GID)

	require.Len(t, list("?limit=2").Transactions, 2)
	require.Empty(t, list("?status=compensating").Transactions)

	before := url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339Nano))
	empty := list("?before=" + before)
	require.NotNil(t, empty.Transactions, "an empty page is [] not null")
	require.Empty(t, empty.Transactions)
	require.Len(t, list("?before="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))).Transactions, 4)

	for _, q := range []struct{ query, want string }{
		{"?status=done", "status"},
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?before=yesterday", "before"},
	} {
		requireProblem(t, e.do(t, "GET", "/v1/transactions"+q.query, nil), http.StatusBadRequest, q.want)
	}
}

func TestAbort(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(path string) int {
		if path == "/charge" {
			<-release
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var once bool
	t.Cleanup(func() {
		if !once {
			close(release)
		}
	})
	r := e.do(t, "POST", "/v1/sagas", e.spec("abort-1"))
	require.Equal(t, http.StatusCreated, r.code)

	requireProblem(t, e.do(t, "POST", "/v1/transactions/abort-1/abort", `{"why":"x"}`), http.StatusBadRequest, "why")

	r = e.do(t, "POST", "/v1/transactions/abort-1/abort", `{"reason":"customer cancelled"}`)
	require.Equal(t, http.StatusAccepted, r.code, "body: %s", r.body)
	require.Equal(t, dtx.StatusCompensating, r.detail(t).Status)
	close(release)
	once = true

	require.Eventually(t, func() bool {
		return e.do(t, "GET", "/v1/transactions/abort-1", nil).detail(t).Status == dtx.StatusFailed
	}, 5*time.Second, 10*time.Millisecond)
	d := e.do(t, "GET", "/v1/transactions/abort-1", nil).detail(t)
	require.Equal(t, "customer cancelled", d.Reason)

	requireProblem(t, e.do(t, "POST", "/v1/transactions/abort-1/abort", nil), http.StatusConflict, "finished")
	requireProblem(t, e.do(t, "POST", "/v1/transactions/nope/abort", nil), http.StatusNotFound)
}

func TestAbort_PastPivot(t *testing.T) {
	release := make(chan struct{})
	shipping := make(chan struct{}, 1)
	e := newEnv(t, func(path string) int {
		if path == "/ship" {
			shipping <- struct{}{}
			<-release
		}
		return http.StatusOK
	})
	defer close(release)
	spec := saga.Spec{GID: "pivot-1", Steps: []saga.Step{
		{Action: e.part.URL + "/reserve", Compensate: e.part.URL + "/release"},
		{Action: e.part.URL + "/ship"},
	}}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas", spec).code)
	// The retriable step is running, so the reservation succeeded (its
	// success may not be written yet: the driver knows).
	select {
	case <-shipping:
	case <-time.After(5 * time.Second):
		t.Fatal("the retriable step never started")
	}
	requireProblem(t, e.do(t, "POST", "/v1/transactions/pivot-1/abort", nil), http.StatusConflict, "pivot")
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(t, "GET", "/healthz", nil)
	require.Equal(t, http.StatusOK, r.code)
	var h map[string]any
	require.NoError(t, json.Unmarshal(r.body, &h))
	require.Equal(t, "ok", h["status"])
	require.Equal(t, e.c.Owner(), h["owner"])

	for _, rt := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/v1/sagas"},
		{"DELETE", "/v1/transactions/x"},
		{"POST", "/v1/transactions"},
	} {
		requireProblem(t, e.do(t, rt.method, rt.path, nil), http.StatusNotFound, rt.path)
	}
}

func TestSubmit_TrailingWhitespaceAccepted(t *testing.T) {
	e := newEnv(t, nil)
	raw, err := json.Marshal(e.spec("ws-1"))
	require.NoError(t, err)
	r := e.do(t, "POST", "/v1/sagas", string(raw)+"\n \t\r\n")
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
}
