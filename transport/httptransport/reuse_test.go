package httptransport_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// TestCallsReuseOneConnection: sequential calls, answered with success,
// with a failure, or with an unknown outcome, all travel over one kept-alive
// connection (the answer is read to its end each time), so the hot path
// pays no connection setup per call.
func TestCallsReuseOneConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/fail":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"title":"conflict","detail":"out of stock"}`)
		case "/later":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := httptransport.New(&http.Client{Transport: httptransport.NewRoundTripper()})
	want := map[string]dtx.Class{"/ok": dtx.Success, "/fail": dtx.Failure, "/later": dtx.Unknown}
	for i := range 30 {
		path := []string{"/ok", "/fail", "/later"}[i%3]
		out := tr.Call(context.Background(), dtx.Call{GID: "g", Branch: 1, Op: dtx.OpAction, URL: srv.URL + path, Attempt: 1})
		require.Equal(t, want[path], out.Class, "call %d to %s: %v", i, path, out.Err)
	}
	require.Equal(t, int32(1), conns.Load(), "connections opened for 30 sequential calls")
}
