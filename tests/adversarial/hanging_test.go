package adversarial_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hangingPeer is a participant that accepts connections and never
// answers: it reads what it is sent and holds the connection until the
// caller closes it.
type hangingPeer struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   map[net.Conn]bool
	maxOpen int
	wg      sync.WaitGroup
}

func startHangingPeer(t *testing.T) *hangingPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &hangingPeer{ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.maxOpen = max(p.maxOpen, len(p.conns))
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				io.Copy(io.Discard, c) // until the caller gives up
				c.Close()
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *hangingPeer) url(path string) string { return "http://" + p.ln.Addr().String() + path }

// open returns how many connections are open now, and the most ever.
func (p *hangingPeer) open() (now, most int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns), p.maxOpen
}

// hangingClient talks to the server under test with a small pool of its
// own (the test's connections count against the server's fd limit too).
var hangingClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16, MaxConnsPerHost: 16},
}

func hangingDo(method, url string, body []byte, header map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := hangingClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// hangingSaga is a one-step saga whose step cannot be compensated (so it
// is past its pivot from the start) and whose participant never answers.
func hangingSaga(p *hangingPeer, gid string) []byte {
	b, _ := json.Marshal(map[string]any{
		"gid": gid, "branch_timeout": "10m",
		"steps": []map[string]any{{"name": "ship", "action": p.url("/ship")}},
	})
	return b
}

// hangingServing checks that the server answers health, list and a new
// submission (which is accepted even though every call slot is taken).
func hangingServing(t *testing.T, s *server, p *hangingPeer, gid string) (active int) {
	t.Helper()
	code, body, err := hangingDo(http.MethodGet, s.URL+"/healthz", nil, nil)
	require.NoError(t, err, "healthz; server log:\n%s", s.Log())
	require.Equal(t, http.StatusOK, code, "healthz: %s", body)
	var h struct{ Active int }
	require.NoError(t, json.Unmarshal(body, &h))
	code, body, err = hangingDo(http.MethodGet, s.URL+"/v1/transactions?limit=5", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "list: %s", body)
	code, body, err = hangingDo(http.MethodPost, s.URL+"/v1/sagas", hangingSaga(p, gid), nil)
	require.NoError(t, err)
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, code, "submit %s: %s", gid, body)
	return h.Active
}

// Finding 1: a thousand sagas whose participant never answers, on a
// server with 256 file descriptors, neither stop it serving nor, after a
// SIGKILL, its successor recovering them; an operator can then stop a
// stuck transaction by force, and its history says who did.
func TestHanging_BoundedCallsRecoveryAndForcedAbort(t *testing.T) {
	const (
		fdLimit  = 256
		maxCalls = 32
		sagas    = 1000
		token    = "hanging-admin-token-0123456789"
	)
	peer := startHangingPeer(t)
	store := "sqlite://" + filepath.Join(t.TempDir(), "dtx.db")
	opts := serverOpts{Store: store, FDLimit: fdLimit, Args: []string{
		"--max-calls", fmt.Sprint(maxCalls), "--recover-batch", "200", "--lease-ttl", "2s", "--admin-token", token,
		"--max-branch-timeout", "10m", // calls must hang for the whole test
	}}
	s := startServer(t, opts)

	// Submit with 16 at a time.
	gids := make(chan int)
	errs := make(chan error, sagas)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range gids {
				gid := fmt.Sprintf("hang-%04d", i)
				code, body, err := hangingDo(http.MethodPost, s.URL+"/v1/sagas", hangingSaga(peer, gid), nil)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("%d %s", code, body)
				}
				if err != nil {
					errs <- fmt.Errorf("submit %s: %w", gid, err)
				}
			}
		}()
	}
	for i := range sagas {
		gids <- i
	}
	close(gids)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "server log:\n%s", s.Log())
	}

	// Every call slot hangs; the server still serves.
	require.Eventually(t, func() bool { n, _ := peer.open(); return n == maxCalls }, 60*time.Second, 10*time.Millisecond)
	active := hangingServing(t, s, peer, "hang-extra-1")
	require.Equal(t, sagas, active, "every saga is driven (the new one may not be counted yet)")
	_, most := peer.open()
	require.LessOrEqual(t, most, maxCalls, "never more connections to the participant than call slots")

	// SIGKILL, then a successor on the same store and fd limit.
	s.Kill()
	require.Eventually(t, func() bool { n, _ := peer.open(); return n == 0 }, 30*time.Second, 10*time.Millisecond,
		"the kernel closes the dead server's connections")
	s2 := startServer(t, opts)
	// It keeps serving while it recovers the backlog, a batch per pass
	// (each round reads the health before its own submission).
	round := 0
	require.Eventually(t, func() bool {
		round++
		a := hangingServing(t, s2, peer, fmt.Sprintf("hang-extra-2-%d", round))
		return a >= sagas+round
	}, 60*time.Second, 200*time.Millisecond, "server log:\n%s", s2.Log())
	_, most = peer.open()
	require.LessOrEqual(t, most, maxCalls)
	// Every unfinished transaction is driven by the successor.
	code, body, err := hangingDo(http.MethodGet, s2.URL+"/v1/transactions?limit=1", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	var list struct{ Counts map[string]int }
	require.NoError(t, json.Unmarshal(body, &list))
	require.Equal(t, sagas+1+round, list.Counts["running"])

	admin := map[string]string{"Authorization": "Bearer " + token}
	abortURL := s2.URL + "/v1/transactions/hang-0007/abort"
	// Compensation is impossible: the saga is past its pivot.
	code, body, err = hangingDo(http.MethodPost, abortURL, []byte(`{"reason":"stuck"}`), admin)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, code, "%s", body)
	require.Contains(t, string(body), "forced abort")
	// Force needs a name to record.
	code, body, err = hangingDo(http.MethodPost, abortURL, []byte(`{"force":true}`), admin)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
	require.Contains(t, string(body), "operator")

	code, body, err = hangingDo(http.MethodPost, abortURL,
		[]byte(`{"force":true,"operator":"alice","reason":"the shipper is gone"}`), admin)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var got struct {
		Status     string
		Reason     string
		Unresolved []struct {
			Branch int
			Name   string
			Why    string
		}
		Events []struct {
			Branch  int
			Outcome string
			Detail  string
		}
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, "failed", got.Status)
	for _, want := range []string{"aborted by operator", `"alice"`, "127.0.0.1:", "the shipper is gone"} {
		require.Contains(t, got.Reason, want)
	}
	require.Len(t, got.Unresolved, 1, "%s", body)
	require.Equal(t, "ship", got.Unresolved[0].Name)

	// The history, as anyone reads it, says who stopped it and which
	// branch needs a human.
	code, body, err = hangingDo(http.MethodGet, s2.URL+"/v1/transactions/hang-0007", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, "failed", got.Status)
	var needsHuman, byAlice bool
	for _, e := range got.Events {
		needsHuman = needsHuman || (e.Branch == 0 && e.Outcome == "needs-human")
		byAlice = byAlice || (e.Branch == -1 && e.Outcome == "failed" && strings.Contains(e.Detail, `"alice"`))
	}
	require.True(t, needsHuman && byAlice, "history: %s", body)

	// A finished transaction cannot be forced.
	code, body, err = hangingDo(http.MethodPost, abortURL, []byte(`{"force":true,"operator":"alice"}`), admin)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, code, "%s", body)
	require.Contains(t, string(body), "already finished")
	require.True(t, s2.Healthy())
}
