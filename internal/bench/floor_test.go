package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/bench"
	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// recorder is a participant that answers every call with 200, except the
// paths in refuse (409), and records the calls it got.
type recorder struct {
	mu     sync.Mutex
	calls  []string // "path op branch"
	refuse map[string]bool
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	rc.mu.Lock()
	rc.calls = append(rc.calls, fmt.Sprintf("%s %s %s", r.URL.Path, r.Header.Get(dtx.HeaderOp), r.Header.Get(dtx.HeaderBranch)))
	refuse := rc.refuse[r.URL.Path]
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if refuse {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"detail":"no stock"}`))
		return
	}
	w.Write([]byte(`{}`))
}

func (rc *recorder) take() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	c := rc.calls
	rc.calls = nil
	return c
}

// startFloor serves bench.FloorHandler over the library's HTTP transport
// and a recording participant; it returns their base URLs.
func startFloor(t *testing.T, rc *recorder) (api, part string) {
	t.Helper()
	part, stopPart, err := loopback.Serve(rc)
	require.NoError(t, err)
	t.Cleanup(stopPart)
	api, stopAPI, err := loopback.Serve(bench.FloorHandler(httptransport.New(nil)))
	require.NoError(t, err)
	t.Cleanup(stopAPI)
	return api, part
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return resp.StatusCode, v
}

// TestFloorHandler checks the floor does what the brief of the floor
// says: a saga's actions called one after the other, a TCC transaction's
// tries (both) before its confirms (both, on their try's branch), the
// coordinator's answer (201, status, branches), a refusal ending the
// transaction as failed, and bad input refused with a 400 problem.
func TestFloorHandler(t *testing.T) {
	rc := &recorder{refuse: map[string]bool{"/no": true}}
	api, part := startFloor(t, rc)

	code, v := post(t, api+"/v1/sagas?wait=true", fmt.Sprintf(`{"gid":"s1","steps":[`+
		`{"name":"out","action":"%[1]s/out","compensate":"%[1]s/out-undo","payload":{"amount":30}},`+
		`{"name":"in","action":"%[1]s/in","compensate":"%[1]s/in-undo","payload":{"amount":30}}]}`, part))
	require.Equal(t, http.StatusCreated, code, "%v", v)
	require.Equal(t, "s1", v["gid"])
	require.Equal(t, "saga", v["pattern"])
	require.Equal(t, "succeeded", v["status"])
	require.Len(t, v["branches"], 2)
	for _, b := range v["branches"].([]any) {
		require.Equal(t, "succeeded", b.(map[string]any)["action"])
	}
	require.Equal(t, []string{"/out action 0", "/in action 1"}, rc.take(), "the steps in order, no compensation")

	part2 := func(n string) string {
		return fmt.Sprintf(`{"name":%q,"try":"%s/%s-try","confirm":"%s/%s-confirm","cancel":"%s/%s-cancel"}`, n, part, n, part, n, part, n)
	}
	code, v = post(t, api+"/v1/tcc?wait=true", fmt.Sprintf(`{"gid":"t1","participants":[%s,%s]}`, part2("a"), part2("b")))
	require.Equal(t, http.StatusCreated, code, "%v", v)
	require.Equal(t, "tcc", v["pattern"])
	require.Equal(t, "succeeded", v["status"])
	calls := rc.take()
	require.Len(t, calls, 4)
	require.ElementsMatch(t, []string{"/a-try try 0", "/b-try try 1"}, calls[:2], "both tries first")
	require.ElementsMatch(t, []string{"/a-confirm confirm 0", "/b-confirm confirm 1"}, calls[2:], "then both confirms, on their try's branch")

	code, v = post(t, api+"/v1/sagas", fmt.Sprintf(`{"gid":"s2","steps":[{"action":"%[1]s/no","compensate":"%[1]s/x"},{"action":"%[1]s/in","compensate":"%[1]s/x"}]}`, part))
	require.Equal(t, http.StatusCreated, code)
	require.Equal(t, "failed", v["status"])
	require.Contains(t, v["reason"], "409")
	require.Equal(t, []string{"/no action 0"}, rc.take(), "nothing after the refusal")

	for _, body := range []string{``, `{"steps":[]}`, `{"gid":"x","steps":[{"action":"ftp://h/a"}]}`, `{"bogus":1}`, `{"steps":[{"action":"http://127.0.0.1:1/a","compensate":"http://127.0.0.1:1/b"}]} x`} {
		code, v = post(t, api+"/v1/sagas?wait=true", body)
		require.Equal(t, http.StatusBadRequest, code, "%q", body)
		require.NotEmpty(t, v["detail"], "%q: a problem body", body)
	}
	code, _ = post(t, api+"/v1/tcc", `{"participants":[]}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Empty(t, rc.take(), "bad input calls no one")
}

// TestServeFloor runs the floor server as dtx bench-floor-server does:
// it writes its address to the ready file, answers there, and returns
// once its context ends.
func TestServeFloor(t *testing.T) {
	rc := &recorder{}
	part, stopPart, err := loopback.Serve(rc)
	require.NoError(t, err)
	defer stopPart()
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- bench.ServeFloor(ctx, bench.FloorConfig{Listen: "127.0.0.1:0", ReadyFile: ready}) }()
	var addr string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(ready)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	}, 10*time.Second, 10*time.Millisecond)
	code, v := post(t, "http://"+addr+"/v1/sagas?wait=true", fmt.Sprintf(`{"steps":[{"action":"%[1]s/a","compensate":"%[1]s/b"}]}`, part))
	require.Equal(t, http.StatusCreated, code, "%v", v)
	require.Equal(t, "succeeded", v["status"])
	require.NotEmpty(t, v["gid"], "a gid is made for a submission without one")
	require.Equal(t, []string{"/a action 0"}, rc.take())
	code, v = post(t, "http://"+addr+"/v1/sagas", fmt.Sprintf(`{"steps":[{"action":"http://%s/v1/sagas","compensate":"%s/b"}]}`, addr, part))
	require.Equal(t, http.StatusBadRequest, code, "the floor, like the coordinator, refuses to call itself: %v", v)
	cancel()
	require.NoError(t, <-errc)
}
