package httptransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// BenchmarkCall is one branch call over loopback HTTP/1.1 to a no-op
// participant: run with -benchmem to see the allocations per call.
func BenchmarkCall(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	tr := httptransport.New(&http.Client{Transport: httptransport.NewRoundTripper()})
	call := dtx.Call{GID: "bench-gid", Branch: 1, Op: dtx.OpAction, URL: srv.URL + "/reserve",
		Payload: []byte(`{"sku":"a","qty":1}`), Attempt: 1,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := tr.Call(ctx, call); out.Class != dtx.Success {
			b.Fatalf("call: %v", out.Err)
		}
	}
}
