package adversarial_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Finding 4: outbound calls are restricted.

// outboundSaga is a one-step saga body.
func outboundSaga(gid, action, compensate string) map[string]any {
	step := map[string]any{"name": "step", "action": action}
	if compensate != "" {
		step["compensate"] = compensate
	}
	return map[string]any{"gid": gid, "steps": []any{step}}
}

// outboundDetail reads GET /v1/transactions/{gid} with the given headers.
func outboundDetail(t *testing.T, s *server, gid string, header map[string]string) (string, map[string]any) {
	t.Helper()
	r := do(t, http.MethodGet, s.URL+"/v1/transactions/"+gid, "", nil, header)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	return string(r.Body), r.JSON(t)
}

// outboundLastError returns branch 0's last error and action attempts.
func outboundLastError(m map[string]any) (string, int) {
	br, _ := m["branches"].([]any)
	if len(br) == 0 {
		return "", 0
	}
	b, _ := br[0].(map[string]any)
	last, _ := b["last_error"].(string)
	n, _ := b["action_attempts"].(float64)
	return last, int(n)
}

// A participant answering 307 (which would replay the POST elsewhere) is
// not followed: the target never sees a request, and the step stays
// unconfirmed (retried) with the redirect in its last error.
func TestOutbound_RedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirected := make(chan struct{}, 16)
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case redirected <- struct{}{}:
		default:
		}
		http.Redirect(w, r, target.URL+"/v1/transactions/x/abort", http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	s := startServer(t, serverOpts{})
	r := postJSON(t, s.URL+"/v1/sagas", outboundSaga("redir-1", redir.URL+"/act", target.URL+"/comp"))
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	for range 2 {
		select {
		case <-redirected:
		case <-time.After(30 * time.Second):
			t.Fatalf("the coordinator did not call the participant:\n%s", s.Log())
		}
	}
	require.Eventually(t, func() bool {
		_, m := outboundDetail(t, s, "redir-1", nil)
		last, n := outboundLastError(m)
		return n >= 2 && strings.Contains(last, "HTTP 307") && strings.Contains(last, "not followed")
	}, 30*time.Second, 20*time.Millisecond)
	_, m := outboundDetail(t, s, "redir-1", nil)
	require.Equal(t, "running", m["status"], "a redirect is no confirmation")
	require.Zero(t, targetHits.Load(), "the redirect target was called")
}

// Step URLs the coordinator must not call are refused at submission with a
// 400 naming the step, and nothing is stored.
func TestOutbound_RefusedAtSubmit(t *testing.T) {
	s := startServer(t, serverOpts{})
	_, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"Credentials", "http://admin:s3cret@127.0.0.1:9/x", []string{"step 0 (step)", "credentials"}},
		{"NotAllowedHost", "http://10.1.2.3/x", []string{"step 0 (step)", "not an allowed participant"}},
		{"PublicName", "http://example.com/x", []string{"not an allowed participant"}},
		{"Metadata", "http://169.254.169.254/latest/meta-data/", []string{"not an allowed participant"}},
		{"SelfAdminAPI", s.URL + "/v1/transactions/victim/abort", []string{"step 0 (step)", "coordinator itself"}},
		{"SelfByName", "http://localhost:" + port + "/v1/sagas", []string{"coordinator itself"}},
		{"SelfByIPv6", "http://[::1]:" + port + "/v1/sagas", []string{"coordinator itself"}},
		{"SelfOtherLoopback", "http://127.0.0.2:" + port + "/healthz", []string{"coordinator itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gid := "refused-" + strings.ToLower(tc.name)
			r := postJSON(t, s.URL+"/v1/sagas", outboundSaga(gid, tc.url, ""))
			requireProblem(t, r, http.StatusBadRequest, tc.want...)
			require.NotContains(t, string(r.Body), "s3cret")
			got := do(t, http.MethodGet, s.URL+"/v1/transactions/"+gid, "", nil, nil)
			require.Equal(t, http.StatusNotFound, got.Status)
		})
	}
	require.True(t, s.Healthy())
}

// --allow-participants widens the allowlist; the coordinator itself stays
// refused even with '*', and a bad entry stops the server with a clear
// message.
func TestOutbound_AllowParticipantsFlag(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--allow-participants", "10.0.0.0/8, https://pay.example/api/"}})
	ok := postJSON(t, s.URL+"/v1/sagas", outboundSaga("allowed-1", "https://pay.example/api/charge", "http://10.1.2.3:8080/refund"))
	require.Equal(t, http.StatusCreated, ok.Status, "body: %s", ok.Body)
	requireProblem(t, postJSON(t, s.URL+"/v1/sagas", outboundSaga("allowed-2", "https://pay.example/admin", "")), http.StatusBadRequest, "not an allowed participant")
	requireProblem(t, postJSON(t, s.URL+"/v1/sagas", outboundSaga("allowed-3", "http://127.0.0.1:9/x", "")), http.StatusBadRequest, "not an allowed participant")

	star := startServer(t, serverOpts{Args: []string{"--allow-participants", "*"}})
	requireProblem(t, postJSON(t, star.URL+"/v1/sagas", outboundSaga("any-1", star.URL+"/v1/sagas", "")), http.StatusBadRequest, "coordinator itself")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dtxBinary(t), "server", "--listen", "127.0.0.1:0",
		"--store", "sqlite://"+filepath.Join(t.TempDir(), "dtx.db"), "--allow-participants", "shop.internal:99999").CombinedOutput()
	require.Error(t, err, "output: %s", out)
	require.Contains(t, string(out), `participant allowlist entry "shop.internal:99999"`)
}

// With an admin token, a dial error (the port-scan oracle: "connection
// refused" versus a timeout) is readable only with the token.
func TestOutbound_DialErrorsHiddenFromAnonymousReaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close()) // a port nothing listens on
	const token = "outbound-admin-token-0123456789"
	s := startServer(t, serverOpts{Args: []string{"--admin-token", token}})
	r := postJSON(t, s.URL+"/v1/sagas", outboundSaga("scan-1", "http://"+closed+"/act", "http://"+closed+"/comp"))
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	admin := map[string]string{"Authorization": "Bearer " + token}

	var adminErr string
	require.Eventually(t, func() bool {
		_, m := outboundDetail(t, s, "scan-1", admin)
		adminErr, _ = outboundLastError(m)
		return adminErr != ""
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, adminErr, "connection refused", "the token holder sees the dial error")

	body, m := outboundDetail(t, s, "scan-1", nil)
	require.NotContains(t, body, "refused")
	require.NotContains(t, body, "dial")
	last, _ := outboundLastError(m)
	require.Equal(t, "hidden: admin token required", last)
	for _, path := range []string{"/v1/transactions", "/v1/attention?min_attempts=1&older_than=0"} {
		anon := do(t, http.MethodGet, s.URL+path, "", nil, nil)
		require.Equal(t, http.StatusOK, anon.Status, "body: %s", anon.Body)
		require.NotContains(t, string(anon.Body), "refused", path)
		withToken := do(t, http.MethodGet, s.URL+path, "", nil, admin)
		require.Equal(t, http.StatusOK, withToken.Status)
	}
	var att struct {
		Transactions []struct {
			Why []string `json:"why"`
		} `json:"transactions"`
	}
	require.NoError(t, json.Unmarshal(do(t, http.MethodGet, s.URL+"/v1/attention?min_attempts=1&older_than=0", "", nil, admin).Body, &att))
	require.NotEmpty(t, att.Transactions)
	require.Contains(t, strings.Join(att.Transactions[0].Why, "\n"), "connection refused")
}
