package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
)

// A participant's error detail ("HTTP 409", or a dial error) is readable
// only with the admin token when the server has one.
func TestRedact_ParticipantDetailsNeedTheToken(t *testing.T) {
	e := newEnv(t, func(path string) int {
		switch path {
		case "/charge":
			return http.StatusConflict
		case "/stuck":
			return http.StatusServiceUnavailable // unknown: retried
		}
		return http.StatusOK
	})
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("red-1")).code)
	stuck := saga.Spec{GID: "red-2", Steps: []saga.Step{{Name: "stuck", Action: e.part.URL + "/stuck"}}}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas", stuck).code)

	// The holder of the token sees the details.
	var d dtx.TxDetail
	require.NoError(t, json.Unmarshal(e.do(t, "GET", "/v1/transactions/red-1", nil).body, &d))
	require.Equal(t, "step 1 (charge) failed: HTTP 409", d.Reason)
	require.Equal(t, "HTTP 409", d.Branches[1].LastError)

	anon := func(path string) string {
		r, _ := e.doAuth(t, "GET", path, "")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		return string(r.body)
	}
	body := anon("/v1/transactions/red-1")
	require.NotContains(t, body, "HTTP 409")
	require.NoError(t, json.Unmarshal([]byte(body), &d))
	require.Equal(t, "step 1 (charge) failed: "+server.Hidden, d.Reason)
	require.Equal(t, server.Hidden, d.Branches[1].LastError)
	require.Equal(t, dtx.StatusFailed, d.Status, "statuses stay visible")
	// A wrong token reads like no token.
	wrong, _ := e.doAuth(t, "GET", "/v1/transactions/red-1", "Bearer not-the-token-at-all")
	require.NotContains(t, string(wrong.body), "HTTP 409")

	require.NotContains(t, anon("/v1/transactions"), "HTTP 409")
	require.Contains(t, string(e.do(t, "GET", "/v1/transactions", nil).body), "HTTP 409")

	// The stuck step, once called a few times, is listed for attention
	// with its last error.
	require.Eventually(t, func() bool {
		return strings.Contains(string(e.do(t, "GET", "/v1/attention?min_attempts=2&older_than=0", nil).body), "last error: HTTP 503")
	}, 10*time.Second, 20*time.Millisecond)
	att := anon("/v1/attention?min_attempts=2&older_than=0")
	require.Contains(t, att, "red-2")
	require.NotContains(t, att, "HTTP 503")
	require.Contains(t, att, "last error: "+server.Hidden)

	// The answer of a submission is a read too.
	e.token = ""
	resub := e.do(t, "POST", "/v1/sagas?wait=true", e.spec("red-1"))
	require.Equal(t, http.StatusOK, resub.code, "%s", resub.body)
	require.NotContains(t, string(resub.body), "HTTP 409")
}

// Without an admin token there is nobody to hide details from.
func TestRedact_NoTokenShowsEverything(t *testing.T) {
	e := newEnvWith(t, func(path string) int {
		if path == "/charge" {
			return http.StatusConflict
		}
		return http.StatusOK
	})
	e.token = ""
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("open-1")).code)
	require.Contains(t, string(e.do(t, "GET", "/v1/transactions/open-1", nil).body), "HTTP 409")
}

// The "tx" events of /v1/events carry the reason redacted for a reader
// without the token, in full for one with it.
func TestRedact_EventStream(t *testing.T) {
	e := newEnv(t, func(path string) int {
		if path == "/charge" {
			return http.StatusConflict
		}
		return http.StatusOK
	})
	baselined := make(chan struct{})
	var once sync.Once
	server.OnPollBaseline(e.srv, func() { once.Do(func() { close(baselined) }) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anonEvs := redactStream(t, ctx, e.api.URL, "")
	adminEvs := redactStream(t, ctx, e.api.URL, "Bearer "+testToken)
	select {
	case <-baselined:
	case <-ctx.Done():
		t.Fatal("no baseline")
	}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("ev-1")).code)
	failedReason := func(evs <-chan sse) string {
		for {
			ev := next(t, evs)
			if ev.name != "tx" {
				continue
			}
			var c api.TxChange
			require.NoError(t, json.Unmarshal([]byte(ev.data), &c))
			if c.GID == "ev-1" && c.Status == dtx.StatusFailed {
				return c.Reason
			}
		}
	}
	require.Equal(t, "step 1 (charge) failed: "+server.Hidden, failedReason(anonEvs))
	require.Equal(t, "step 1 (charge) failed: HTTP 409", failedReason(adminEvs))
}

// redactStream opens /v1/events with an Authorization header (if any).
func redactStream(t *testing.T, ctx context.Context, base, auth string) <-chan sse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := make(chan sse, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	require.Equal(t, "hello", next(t, out).name)
	return out
}
