package httptransport_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// TestLimitConns: a transport limited to two connections opens no more
// than two to a participant however many calls wait for it, and the
// waiting calls succeed once it answers.
func TestLimitConns(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	open, most, inHandler := 0, 0, 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inHandler++
		mu.Unlock()
		<-release
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
			most = max(most, open)
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // runs before srv.Close: a failed test must not hang on held handlers

	tr := httptransport.New(nil)
	tr.LimitConns(2)
	const calls = 6
	var wg sync.WaitGroup
	outs := make([]dtx.Outcome, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + "/a", Attempt: 1, Timeout: time.Minute})
		}()
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return inHandler == 2 }, 10*time.Second, time.Millisecond)
	free()
	wg.Wait()
	for _, o := range outs {
		require.Equal(t, dtx.Success, o.Class, "%v", o.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, most, "connections opened at most")
	require.Equal(t, calls, inHandler)
}
