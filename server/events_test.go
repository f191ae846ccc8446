package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

type sse struct {
	name, data string
}

// openStream connects to GET /v1/events and returns its events as they
// arrive; the channel closes when the stream ends.
func openStream(t *testing.T, ctx context.Context, base string) (<-chan sse, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
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
	return out, resp
}

func next(t *testing.T, evs <-chan sse) sse {
	t.Helper()
	select {
	case ev, ok := <-evs:
		require.True(t, ok, "stream ended")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return sse{}
	}
}

func TestEvents_StreamsChanges(t *testing.T) {
	e := newEnv(t, func(path string) int {
		if path == "/charge" {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("before-1")).code)
	baselined := make(chan struct{})
	var once sync.Once
	server.OnPollBaseline(e.srv, func() { once.Do(func() { close(baselined) }) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, resp := openStream(t, ctx, e.api.URL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	hello := next(t, evs)
	require.Equal(t, "hello", hello.name)
	var hc api.CountsEvent
	require.NoError(t, json.Unmarshal([]byte(hello.data), &hc))
	require.Equal(t, map[dtx.Status]int{dtx.StatusFailed: 1}, hc.Counts, "the saga before the stream, compensated")

	// Once the poller has its baseline, change things.
	select {
	case <-baselined:
	case <-time.After(10 * time.Second):
		t.Fatal("the poller took no baseline within 10s")
	}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec("live-1")).code)
	ok := saga.Spec{GID: "live-2", Steps: []saga.Step{{Name: "only", Action: e.part.URL + "/reserve"}}}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", ok).code)

	final := map[string]dtx.Status{}
	var counts map[dtx.Status]int
	for final["live-1"] != dtx.StatusFailed || final["live-2"] != dtx.StatusSucceeded || counts[dtx.StatusSucceeded] != 1 {
		ev := next(t, evs)
		switch ev.name {
		case "tx":
			var c api.TxChange
			require.NoError(t, json.Unmarshal([]byte(ev.data), &c))
			require.NotEqual(t, "before-1", c.GID, "an unchanged transaction is not reported")
			require.Equal(t, dtx.PatternSaga, c.Pattern)
			require.False(t, c.CreatedAt.IsZero())
			final[c.GID] = c.Status
			if c.Status == dtx.StatusFailed {
				require.NotEmpty(t, c.Reason)
			}
		case "counts":
			var ce api.CountsEvent
			require.NoError(t, json.Unmarshal([]byte(ev.data), &ce))
			counts = ce.Counts
		default:
			t.Fatalf("unexpected event %q", ev.name)
		}
	}
	require.Equal(t, 2, counts[dtx.StatusFailed])
}

func TestEvents_CloseStreamsEndsThem(t *testing.T) {
	e := newEnv(t, nil)
	api := server.New(e.c)
	srv := httptest.NewServer(api)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, _ := openStream(t, ctx, srv.URL)
	require.Equal(t, "hello", next(t, evs).name)

	api.CloseStreams()
	select {
	case _, open := <-evs:
		require.False(t, open, "no event after close")
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open after CloseStreams")
	}
	resp, err := http.Get(srv.URL + "/v1/events")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}
