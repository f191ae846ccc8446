package httptransport_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// rawServer accepts connections on loopback and runs serve on each, with
// the number of the connection (from 1).
func rawServer(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open { // idle connections the transport keeps
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// okAnswer is a kept-alive 200 with a JSON body, written raw.
const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

// readRequest reads a request and its body from br; false once the
// connection is done.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, req.Body)
	return true
}

func call(tr *httptransport.Transport, url string) dtx.Outcome {
	return tr.Call(context.Background(), dtx.Call{GID: "g", Branch: 1, Op: dtx.OpAction, URL: url, Attempt: 1, Timeout: 10 * time.Second})
}

// countConns starts srv counting the connections it accepts.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	return &conns
}

func TestLean_ReusesOneConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	conns := countConns(srv)
	defer srv.Close()
	tr := httptransport.New(nil)
	for i := range 20 {
		out := call(tr, srv.URL+"/a")
		require.Equal(t, dtx.Success, out.Class, "call %d: %v", i, out.Err)
		require.Equal(t, "{}", string(out.Body))
	}
	require.EqualValues(t, 1, conns.Load())
}

// A participant that closed the kept-alive connection while it was idle:
// the next call dials again and sends its request once more; the server
// sees each call's request once.
func TestLean_StaleConnectionIsRedialled(t *testing.T) {
	var requests atomic.Int32
	closed := make(chan struct{}, 3)
	url := rawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if !readRequest(br) {
			return
		}
		requests.Add(1)
		// Answer keep-alive, then close the connection anyway.
		io.WriteString(c, okAnswer)
		c.Close()
		closed <- struct{}{}
	})
	tr := httptransport.New(nil)
	for i := range 3 {
		out := call(tr, url+"/a")
		require.Equal(t, dtx.Success, out.Class, "call %d: %v", i, out.Err)
		<-closed // the next call finds the kept connection closed
	}
	require.EqualValues(t, 3, requests.Load())
}

// A participant that closes a kept-alive connection after reading a
// request, without answering or after part of an answer, may have acted
// on it: the call fails with an unknown outcome (the coordinator retries
// it) and the request is not sent again by the transport, which recovers
// on a new connection.
func TestLean_NoResendOnceTheRequestWasWritten(t *testing.T) {
	for _, tc := range []struct{ name, partial string }{
		{"NoAnswer", ""},
		{"PartOfAnAnswer", "HTTP/1.1 200 OK\r\nContent-Len"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var requests atomic.Int32
			url := rawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
				for {
					if !readRequest(br) {
						return
					}
					if requests.Add(1) == 2 {
						io.WriteString(c, tc.partial)
						return // closed
					}
					io.WriteString(c, okAnswer)
				}
			})
			tr := httptransport.New(nil)
			require.Equal(t, dtx.Success, call(tr, url+"/a").Class)
			out := call(tr, url+"/a")
			require.Equal(t, dtx.Unknown, out.Class)
			require.Error(t, out.Err)
			require.EqualValues(t, 2, requests.Load(), "the request was sent again")
			require.Equal(t, dtx.Success, call(tr, url+"/a").Class)
			require.EqualValues(t, 3, requests.Load())
		})
	}
}

// Bytes that arrive on an idle connection (a server's 408 before it
// closes) are no call's answer: the connection is dropped and the call
// goes on a new one.
func TestLean_StrayBytesOnAnIdleConnection(t *testing.T) {
	idle, sent := make(chan struct{}), make(chan struct{})
	var answered atomic.Int32
	url := rawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			if !readRequest(br) {
				return
			}
			first := answered.Add(1) == 1
			io.WriteString(c, okAnswer)
			if first {
				// Then, once the connection is idle, an answer no
				// request is waiting for; the connection stays open.
				<-idle
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				close(sent)
			}
		}
	})
	tr := httptransport.New(nil)
	require.Equal(t, dtx.Success, call(tr, url+"/a").Class)
	close(idle)
	<-sent
	out := call(tr, url+"/a")
	require.Equal(t, dtx.Success, out.Class, "%v", out.Err)
	require.EqualValues(t, 2, answered.Load())
}

// callEndless calls a participant that reads the request, writes head,
// then writes fill over and over until the connection breaks. The call
// may take a minute: only a bound on what is read ends it sooner.
func callEndless(t *testing.T, head, fill string) dtx.Outcome {
	url := rawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if !readRequest(br) {
			return
		}
		io.WriteString(c, head)
		for {
			if _, err := io.WriteString(c, fill); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return httptransport.New(nil).Call(ctx, dtx.Call{GID: "g", Branch: 1, Op: dtx.OpAction, URL: url + "/a", Attempt: 1, Timeout: time.Minute})
}

// An answer whose head never ends is cut at MaxResponseHeader: the call
// fails at once instead of reading until its timeout.
func TestLean_HeadIsBounded(t *testing.T) {
	out := callEndless(t, "HTTP/1.1 200 OK\r\nX-Long: ", strings.Repeat("a", 64<<10))
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "answer head larger than")
}

// Informational answers without end are not read for ever.
func TestLean_Endless1xxAnswers(t *testing.T) {
	out := callEndless(t, "", "HTTP/1.1 102 Processing\r\n\r\n")
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "informational")
}

func TestLean_ChunkedAndUnsizedAnswers(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"part":1,`)
		w.(http.Flusher).Flush() // no Content-Length: chunked
		io.WriteString(w, `"end":true}`)
	}))
	conns := countConns(srv)
	defer srv.Close()
	tr := httptransport.New(nil)
	for range 3 {
		out := call(tr, srv.URL)
		require.Equal(t, dtx.Success, out.Class, "%v", out.Err)
		require.JSONEq(t, `{"part":1,"end":true}`, string(out.Body))
	}
	require.EqualValues(t, 1, conns.Load(), "a chunked answer read to its end keeps the connection")

	// HTTP/1.0-style: no length, the body ends when the server closes.
	url := rawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"unsized\":true}")
		}
	})
	for range 2 {
		out := call(tr, url)
		require.Equal(t, dtx.Success, out.Class, "%v", out.Err)
		require.JSONEq(t, `{"unsized":true}`, string(out.Body))
	}
}

func TestLean_ConnectionCloseIsHonoured(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "{}")
	}))
	conns := countConns(srv)
	defer srv.Close()
	tr := httptransport.New(nil)
	for range 3 {
		require.Equal(t, dtx.Success, call(tr, srv.URL).Class)
	}
	require.EqualValues(t, 3, conns.Load(), "each answer closed its connection")
}

// A body beyond MaxResponseBody is cut there, and the connection that
// still holds the rest is not reused.
func TestLean_BodyLimit(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", httptransport.MaxResponseBody+100))
	}))
	conns := countConns(srv)
	defer srv.Close()
	tr := httptransport.New(nil)
	for range 2 {
		out := call(tr, srv.URL)
		require.Equal(t, dtx.Success, out.Class)
		require.Len(t, out.Body, httptransport.MaxResponseBody)
	}
	require.EqualValues(t, 2, conns.Load())
}

// A call cancelled while it waits for a connection (all held by other
// calls) gives up without one, and leaves the pool usable.
func TestLean_CancelWhileWaitingForAConnection(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
	}))
	defer srv.Close()
	tr := httptransport.New(nil)
	tr.LimitConns(1)
	held := make(chan dtx.Outcome, 1)
	go func() { held <- call(tr, srv.URL+"/hold") }()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan dtx.Outcome, 1)
	go func() {
		res <- tr.Call(ctx, dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + "/b", Attempt: 1})
	}()
	cancel()
	out := <-res
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorIs(t, out.Err, context.Canceled)
	close(release)
	require.Equal(t, dtx.Success, (<-held).Class)
	require.Equal(t, dtx.Success, call(tr, srv.URL+"/c").Class)
}

// An answer that never comes ends at the call's timeout, and the
// connection it held is not reused (its answer could still arrive).
func TestLean_TimeoutDropsTheConnection(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}
	}))
	conns := countConns(srv)
	defer srv.Close()
	defer close(stop)
	tr := httptransport.New(nil)
	require.Equal(t, dtx.Success, call(tr, srv.URL+"/a").Class)
	out := tr.Call(context.Background(), dtx.Call{GID: "g", Op: dtx.OpAction, URL: srv.URL + "/slow", Attempt: 1, Timeout: 50 * time.Millisecond})
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "timeout after 50ms")
	require.Equal(t, dtx.Success, call(tr, srv.URL+"/a").Class)
	require.EqualValues(t, 2, conns.Load())
}

// TestLean_ProxiedCallsKeepNetHTTP: a call the environment sends through a
// proxy does not take the lean path (which would go straight to the
// participant); net/http sends it to the proxy.
func TestLean_ProxiedCallsKeepNetHTTP(t *testing.T) {
	var direct atomic.Int32
	participant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		direct.Add(1)
	}))
	t.Cleanup(participant.Close)
	var mu sync.Mutex
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.Method+" "+r.RequestURI+" "+r.Header.Get(dtx.HeaderGID))
		mu.Unlock()
		w.Write([]byte(`{"via":"proxy"}`))
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)
	tr := httptransport.New(nil, httptransport.WithProxy(func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == strings.TrimPrefix(participant.URL, "http://") {
			return proxyURL, nil
		}
		return nil, nil
	}))
	out := call(tr, participant.URL+"/do")
	require.Equal(t, dtx.Success, out.Class, "%v", out.Err)
	require.JSONEq(t, `{"via":"proxy"}`, string(out.Body))
	require.Zero(t, direct.Load())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"POST " + participant.URL + "/do g"}, proxied)
}

// An answer longer than MaxResponseBody is cut there: the call does not
// read on (an endless body would hold it until its timeout); the
// connection is closed instead.
func TestLean_EndlessBodyIsCutAtTheLimit(t *testing.T) {
	closed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", httptransport.MaxResponseBody+100))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the client closed the connection
		close(closed)
	}))
	defer srv.Close()
	tr := httptransport.New(nil)
	done := make(chan dtx.Outcome, 1)
	go func() {
		// No timeout: only cutting the body ends this call.
		done <- tr.Call(context.Background(), dtx.Call{GID: "g", Branch: 1, Op: dtx.OpAction, URL: srv.URL, Attempt: 1})
	}()
	<-closed
	out := <-done
	require.Equal(t, dtx.Success, out.Class, "%v", out.Err)
	require.Len(t, out.Body, httptransport.MaxResponseBody)
}
