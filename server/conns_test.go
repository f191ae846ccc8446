package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/server"
)

// connsGet sends GET path to base with the given Host header.
func connsGet(t *testing.T, base, host, path string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

func requireProblemType(t *testing.T, body []byte, status int, typ string) {
	t.Helper()
	var p problem.Details
	require.NoError(t, json.Unmarshal(body, &p), "body: %s", body)
	require.Equal(t, status, p.Status)
	require.Equal(t, typ, p.Type)
	require.NotEmpty(t, p.Detail)
}

// TestHost_DNSRebinding: a page on an attacker's name that resolves to the
// coordinator must not read or drive it: requests must name an IP
// address, localhost or a configured host.
func TestHost_DNSRebinding(t *testing.T) {
	e := newEnvWith(t, nil, server.WithAllowedHosts("Coord.Internal", " "))
	port := e.api.URL[strings.LastIndex(e.api.URL, ":"):]
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1" + port, true},
		{"[::1]" + port, true},
		{"10.1.2.3", true},
		{"localhost" + port, true},
		{"LocalHost.", true},
		{"dash.localhost" + port, true},
		{"coord.internal" + port, true},
		{"COORD.INTERNAL.", true},
		{"evil.example" + port, false},
		{"evil.example", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.nip.io" + port, false},
		{"coord.internal.evil.example", false},
	} {
		for _, path := range []string{"/healthz", "/v1/transactions", "/ui/"} {
			code, _, body := connsGet(t, e.api.URL, tc.host, path)
			if tc.ok {
				require.Equal(t, http.StatusOK, code, "%s %s: %s", tc.host, path, body)
				continue
			}
			require.Equal(t, http.StatusMisdirectedRequest, code, "%s %s: %s", tc.host, path, body)
			requireProblemType(t, body, http.StatusMisdirectedRequest, problem.TypeHostNotAllowed)
		}
	}
	// A submission under a foreign Host is refused before it is read.
	req, err := http.NewRequest(http.MethodPost, e.api.URL+"/v1/sagas", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
}

// slowServer serves e's API again with read and write timeouts far below
// how long the answers below take.
func slowServer(t *testing.T, e *env) *httptest.Server {
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Config.ReadTimeout = 50 * time.Millisecond
	ts.Config.ReadHeaderTimeout = 50 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// TestWait_OutlivesTimeouts: ?wait=true answers after the step, however
// far past the read and write timeouts that is.
func TestWait_OutlivesTimeouts(t *testing.T) {
	e := newEnvWith(t, func(path string) int {
		if path == "/charge" {
			time.Sleep(300 * time.Millisecond) // a slow participant: six write timeouts
		}
		return http.StatusOK
	}, server.WithWriteTimeout(50*time.Millisecond))
	e.api = slowServer(t, e)
	r := e.do(t, "POST", "/v1/sagas?wait=true", e.spec("slow-1"))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	require.Equal(t, dtx.StatusSucceeded, r.detail(t).Status)
}

// TestEvents_OutliveTimeouts: an event stream keeps delivering past the
// read and write timeouts (each event has its own write deadline).
func TestEvents_OutliveTimeouts(t *testing.T) {
	e := newEnvWith(t, nil, server.WithWriteTimeout(50*time.Millisecond))
	e.api = slowServer(t, e)
	baselined := make(chan struct{})
	var once sync.Once
	server.OnPollBaseline(e.srv, func() { once.Do(func() { close(baselined) }) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, resp := openStream(t, ctx, e.api.URL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "hello", next(t, evs).name)
	<-baselined
	// The next poll is server.EventPollInterval (10 timeouts) away.
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("ev-1")).code)
	for {
		ev := next(t, evs)
		if ev.name == "tx" && strings.Contains(ev.data, `"ev-1"`) {
			return
		}
	}
}

// TestEvents_StreamCap: past WithMaxEventStreams, 503 with Retry-After; a
// closed stream frees its slot.
func TestEvents_StreamCap(t *testing.T) {
	e := newEnvWith(t, nil, server.WithMaxEventStreams(2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx1, close1 := context.WithCancel(ctx)
	evs1, _ := openStream(t, ctx1, e.api.URL)
	require.Equal(t, "hello", next(t, evs1).name)
	evs2, _ := openStream(t, ctx, e.api.URL)
	require.Equal(t, "hello", next(t, evs2).name)

	code, h, body := connsGet(t, e.api.URL, "", "/v1/events")
	require.Equal(t, http.StatusServiceUnavailable, code, "body: %s", body)
	require.Equal(t, "5", h.Get("Retry-After"))
	requireProblemType(t, body, http.StatusServiceUnavailable, problem.TypeTooBusy)
	// Other requests are not affected.
	code, _, _ = connsGet(t, e.api.URL, "", "/healthz")
	require.Equal(t, http.StatusOK, code)

	close1()
	for range evs1 {
	}
	// The slot is freed when the handler returns, just after the client
	// saw the stream end.
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.api.URL+"/v1/events", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
}

// TestWait_WaiterCap: past WithMaxWaiters, a ?wait=true submission is
// refused with 503 and Retry-After, and nothing is submitted; submissions
// that do not wait still go through.
func TestWait_WaiterCap(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	e := newEnvWith(t, func(path string) int {
		if path == "/charge" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return http.StatusOK
	}, server.WithMaxWaiters(1))
	first := make(chan response, 1)
	go func() { first <- e.do(t, "POST", "/v1/sagas?wait=true&timeout=1m", e.spec("waits-1")) }()
	<-entered

	r := e.do(t, "POST", "/v1/sagas?wait=true", e.spec("waits-2"))
	requireProblem(t, r, http.StatusServiceUnavailable, "too many submissions")
	requireProblemType(t, r.body, http.StatusServiceUnavailable, problem.TypeTooBusy)
	requireProblem(t, e.do(t, "GET", "/v1/transactions/waits-2", nil), http.StatusNotFound)
	r = e.do(t, "POST", "/v1/sagas", e.spec("nowait-1"))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)

	close(release)
	r = <-first
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	require.Equal(t, dtx.StatusSucceeded, r.detail(t).Status)
	r = e.do(t, "POST", "/v1/sagas?wait=true", e.spec("waits-3"))
	require.Equal(t, http.StatusCreated, r.code, "the slot is free again: %s", r.body)
}
