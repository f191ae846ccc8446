package httptransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		code int
		want dtx.Class
	}{
		{200, dtx.Success}, {201, dtx.Success}, {202, dtx.Success}, {204, dtx.Success},
		{400, dtx.Failure}, {402, dtx.Failure}, {403, dtx.Failure}, {404, dtx.Failure},
		{409, dtx.Failure}, {410, dtx.Failure}, {422, dtx.Failure},
		{408, dtx.Unknown}, {425, dtx.Unknown}, {429, dtx.Unknown},
		{500, dtx.Unknown}, {502, dtx.Unknown}, {503, dtx.Unknown}, {504, dtx.Unknown},
		{100, dtx.Unknown}, {301, dtx.Unknown}, {304, dtx.Unknown}, {600, dtx.Unknown},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, httptransport.Classify(tt.code), "HTTP %d", tt.code)
	}
}

type seen struct {
	method, path string
	header       http.Header
	body         string
}

func TestCall_SendsHeadersAndPayload(t *testing.T) {
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Clone(), string(b)}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	tr := httptransport.New(nil)

	out := tr.Call(context.Background(), dtx.Call{
		GID: "order-7", Branch: 3, Op: dtx.OpCompensate, URL: srv.URL + "/refund",
		Payload: []byte(`{"amount":12}`), Attempt: 2, Timeout: 2 * time.Second,
	})
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.NoError(t, out.Err)
	require.JSONEq(t, `{"ok":true}`, string(out.Body))
	s := <-got
	require.Equal(t, http.MethodPost, s.method)
	require.Equal(t, "/refund", s.path)
	require.Equal(t, `{"amount":12}`, s.body)
	require.Equal(t, "application/json", s.header.Get("Content-Type"))
	require.Equal(t, "order-7", s.header.Get(dtx.HeaderGID))
	require.Equal(t, "3", s.header.Get(dtx.HeaderBranch))
	require.Equal(t, "compensate", s.header.Get(dtx.HeaderOp))
	require.Equal(t, "2", s.header.Get(dtx.HeaderAttempt))
	require.Empty(t, s.header.Get("traceparent"), "no trace context: no header")

	// A call within a trace carries its traceparent.
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	out = tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + "/act", Attempt: 1, TraceParent: tp})
	require.Equal(t, dtx.Success, out.Class)
	s = <-got
	require.Equal(t, tp, s.header.Get("traceparent"))

	// An empty payload is sent as an empty JSON object.
	out = tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + "/act", Attempt: 1})
	require.Equal(t, dtx.Success, out.Class)
	s = <-got
	require.Equal(t, "{}", s.body)
	require.Equal(t, "action", s.header.Get(dtx.HeaderOp))
	require.Equal(t, "0", s.header.Get(dtx.HeaderBranch))
}

func TestCall_StatusClasses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"type":"about:blank","title":"Conflict","status":409,"detail":"insufficient stock for sku-42"}`))
		case "/title-only":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"title":"card declined"}`))
		case "/unavailable":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"detail":"database is restarting"}`))
		case "/text":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("  bad gateway\n" + strings.Repeat("x", 500)))
		case "/empty":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	tr := httptransport.New(srv.Client())
	call := func(path string) dtx.Outcome {
		return tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + path, Attempt: 1, Timeout: 2 * time.Second})
	}

	out := call("/problem")
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "insufficient stock for sku-42")
	require.Contains(t, out.Reason(), "HTTP 409")
	var se *httptransport.StatusError
	require.True(t, errors.As(out.Err, &se))
	require.Equal(t, http.StatusConflict, se.Code)
	require.Equal(t, "insufficient stock for sku-42", se.Detail)

	out = call("/title-only")
	require.Equal(t, dtx.Failure, out.Class)
	require.ErrorContains(t, out.Err, "card declined")

	out = call("/unavailable")
	require.Equal(t, dtx.Unknown, out.Class)
	require.EqualError(t, out.Err, "HTTP 503: database is restarting")

	out = call("/text")
	require.Equal(t, dtx.Unknown, out.Class)
	require.True(t, errors.As(out.Err, &se))
	require.True(t, strings.HasPrefix(se.Detail, "bad gateway"), se.Detail)
	require.LessOrEqual(t, len(se.Detail), 200, "long bodies are cut")

	out = call("/empty")
	require.Equal(t, dtx.Unknown, out.Class)
	require.EqualError(t, out.Err, "HTTP 429")

	out = call("/nocontent")
	require.Equal(t, dtx.Success, out.Class)
	require.NoError(t, out.Err)
}

func TestCall_TimeoutIsUnknown(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	// The handler only returns when the call gives up (or the test ends):
	// the call returning at all shows the timeout ended it.
	res := make(chan dtx.Outcome, 1)
	go func() {
		res <- httptransport.New(nil).Call(context.Background(), dtx.Call{
			GID: "g", Op: dtx.OpAction, URL: srv.URL, Attempt: 1, Timeout: 100 * time.Millisecond,
		})
	}()
	var out dtx.Outcome
	select {
	case out = <-res:
	case <-time.After(time.Minute):
		t.Fatal("the call ignores its timeout")
	}
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "timeout after 100ms")
}

func TestCall_CanceledContextIsUnknown(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	out := httptransport.New(nil).Call(ctx, dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL, Attempt: 1, Timeout: 5 * time.Second})
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorIs(t, out.Err, context.Canceled)
}

func TestCall_ConnectionRefusedIsUnknown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	out := httptransport.New(nil).Call(context.Background(), dtx.Call{
		GID: "g", Op: dtx.OpAction, URL: "http://" + addr + "/act", Attempt: 1, Timeout: 2 * time.Second,
	})
	require.Equal(t, dtx.Unknown, out.Class)
	require.Error(t, out.Err)
	require.ErrorContains(t, out.Err, "refused")
}

func TestCall_BadURLIsUnknown(t *testing.T) {
	out := httptransport.New(nil).Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: "http://[::1/x", Attempt: 1})
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "build request")
}

func TestCheckURL(t *testing.T) {
	tr := httptransport.New(nil)
	for _, ok := range []string{"http://svc.local/x", "https://svc.local:8443/x?y=1", "HTTP://svc/x"} {
		require.NoError(t, tr.CheckURL(ok), ok)
	}
	for raw, want := range map[string]string{
		"ftp://svc.local/x":      "must be http or https",
		"mailto:ops@example.com": "must be http or https",
		"broker://inventory":     "must be http or https",
		"/act":                   "must be http or https",
		"http:///act":            "has no host",
		"http://[::1/act":        `invalid URL "http://[::1/act"`,
	} {
		require.ErrorContains(t, tr.CheckURL(raw), want, raw)
	}
}

// TestCall_MisroutedAnswers: a 404 or 405 that is not a dtx participant's
// (Go's mux answers "404 page not found" as text) is marked misrouted and
// says so with the URL; the same codes with a problem+json body are a
// participant's own answer and are not.
func TestCall_MisroutedAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /participant-404", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"type":"about:blank","detail":"no such order"}`))
	})
	mux.HandleFunc("GET /get-only", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tr := httptransport.New(srv.Client())
	call := func(path string) dtx.Outcome {
		return tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpCompensate, URL: srv.URL + path, Attempt: 1, Timeout: 2 * time.Second})
	}
	for path, code := range map[string]int{"/nowhere": 404, "/get-only": 405} {
		out := call(path)
		require.Equal(t, dtx.Failure, out.Class, path)
		require.ErrorIs(t, out.Err, dtx.ErrMisrouted, path)
		require.EqualError(t, out.Err, fmt.Sprintf("%s%s answered %d (not a dtx participant: wrong URL?) [%s]", srv.URL, path, code, dtx.TypeMisrouted))
	}
	out := call("/participant-404")
	require.Equal(t, dtx.Failure, out.Class)
	require.NotErrorIs(t, out.Err, dtx.ErrMisrouted)
	require.EqualError(t, out.Err, "HTTP 404: no such order")

	require.True(t, httptransport.Misrouted(404, "text/plain; charset=utf-8"))
	require.True(t, httptransport.Misrouted(405, ""))
	require.False(t, httptransport.Misrouted(404, "application/problem+json; charset=utf-8"))
	require.False(t, httptransport.Misrouted(409, "text/plain"))
	require.False(t, httptransport.Misrouted(502, "text/html"))
}
