package adversarial_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Finding 7: connections never time out. Each test starts the server with
// short timeouts and checks that what would hold a connection forever is
// cut, and that the server serves afterwards.

// connsDial opens a raw TCP connection to s.
func connsDial(t *testing.T, s *server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// connsRequireClosed reads (and discards) until the server closes c; it
// fails if the server holds it for 30s.
func connsRequireClosed(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server held the connection for 30s")
	}
	// io.Copy returns nil on EOF; a reset is a close too.
}

// connsGet sends GET path with the given Host header.
func connsGet(t *testing.T, s *server, host, path string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func TestConns_IdleKeepAliveClosed(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--idle-timeout", "300ms"}})
	c := connsDial(t, s)
	_, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "a keep-alive connection")
	// Now idle: the server closes it.
	connsRequireClosed(t, c)
	require.True(t, s.Healthy())
}

func TestConns_SilentConnectionClosed(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--read-header-timeout", "300ms"}})
	connsRequireClosed(t, connsDial(t, s))
	// Half a request line, then nothing.
	c := connsDial(t, s)
	_, err := fmt.Fprint(c, "GET /heal")
	require.NoError(t, err)
	connsRequireClosed(t, c)
	require.True(t, s.Healthy())
}

func TestConns_SlowBodyClosed(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--read-timeout", "300ms"}})
	head := fmt.Sprintf("POST /v1/sagas HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", s.Addr)

	// Headers and the start of a body, then nothing.
	c := connsDial(t, s)
	_, err := fmt.Fprint(c, head+`{"gid":"slow-1",`)
	require.NoError(t, err)
	connsRequireClosed(t, c)

	// A body trickled a byte at a time, forever.
	c = connsDial(t, s)
	_, err = fmt.Fprint(c, head+`{"gid":"slow-2","steps":[{"action":"http://127.0.0.1:9/a","payload":"`)
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	connsRequireClosed(t, c)
	close(stop)
	wg.Wait()

	for _, gid := range []string{"slow-1", "slow-2"} {
		r := do(t, http.MethodGet, s.URL+"/v1/transactions/"+gid, "", nil, nil)
		require.Equal(t, http.StatusNotFound, r.Status, "body: %s", r.Body)
	}
	require.True(t, s.Healthy())
}

func TestConns_EventStreamCap(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--max-event-streams", "2"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/events", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		require.Equal(t, http.StatusOK, resp.StatusCode)
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "retry: 2000\n", line)
	}
	r := do(t, http.MethodGet, s.URL+"/v1/events", "", nil, nil)
	requireProblem(t, r, http.StatusServiceUnavailable, "too many event streams")
	require.Equal(t, "urn:dtx:problem:too-busy", r.JSON(t)["type"])
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.True(t, s.Healthy())
}

func TestConns_WaiterCap(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(part.Close)
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	s := startServer(t, serverOpts{Args: []string{"--max-waiters", "1"}})
	spec := func(gid string) string {
		return fmt.Sprintf(`{"gid":%q,"steps":[{"action":%q}]}`, gid, part.URL+"/a")
	}
	first := make(chan reply, 1)
	go func() {
		first <- do(t, http.MethodPost, s.URL+"/v1/sagas?wait=true&timeout=1m", "application/json", []byte(spec("wait-1")), nil)
	}()
	<-entered

	r := do(t, http.MethodPost, s.URL+"/v1/sagas?wait=true", "application/json", []byte(spec("wait-2")), nil)
	requireProblem(t, r, http.StatusServiceUnavailable, "waiting")
	require.Equal(t, "urn:dtx:problem:too-busy", r.JSON(t)["type"])
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	got := do(t, http.MethodGet, s.URL+"/v1/transactions/wait-2", "", nil, nil)
	require.Equal(t, http.StatusNotFound, got.Status, "refused before submitting: %s", got.Body)

	releaseAll()
	r = <-first
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.Equal(t, "succeeded", r.JSON(t)["status"])
	require.True(t, s.Healthy())
}

// Finding 3 (Host): DNS rebinding. A page on evil.example that re-points
// its name at 127.0.0.1 reaches the server with Host: evil.example.
func TestConns_HostValidation(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--api-hosts", "coord.example"}})
	_, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	for _, path := range []string{"/healthz", "/v1/transactions", "/ui/"} {
		r := connsGet(t, s, "evil.example:"+port, path)
		requireProblem(t, r, http.StatusMisdirectedRequest, "evil.example")
		require.Equal(t, "urn:dtx:problem:host-not-allowed", r.JSON(t)["type"])
		for _, host := range []string{s.Addr, "localhost:" + port, "coord.example:" + port} {
			r := connsGet(t, s, host, path)
			require.Equal(t, http.StatusOK, r.Status, "Host %s %s: %s", host, path, r.Body)
		}
	}
	spec := `{"gid":"rebind-1","steps":[{"action":"http://127.0.0.1:9/a"}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/sagas", strings.NewReader(spec))
	require.NoError(t, err)
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	require.Equal(t, http.StatusNotFound, do(t, http.MethodGet, s.URL+"/v1/transactions/rebind-1", "", nil, nil).Status)
	require.True(t, s.Healthy())
}

// Many idle connections under a low open-file limit: 300 silent
// connections against a limit of 256 exhaust the descriptors for a while,
// but each is closed after the header timeout, so the server accepts
// again and serves. (No connection cap: the timeouts bound how long a
// descriptor is held, and a cap below the fd limit would let the same 300
// connections lock everyone else out just the same.)
func TestConns_ManyIdleConnectionsUnderFDLimit(t *testing.T) {
	s := startServer(t, serverOpts{FDLimit: 256, Args: []string{"--read-header-timeout", "500ms", "--idle-timeout", "500ms"}})
	conns := make([]net.Conn, 0, 300)
	for range 300 {
		conns = append(conns, connsDial(t, s))
	}
	for _, c := range conns {
		connsRequireClosed(t, c)
	}
	require.Eventually(t, s.Healthy, 30*time.Second, 50*time.Millisecond, "log:\n%s", s.Log())
	r := do(t, http.MethodGet, s.URL+"/v1/transactions", "", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// Bad limits are refused at start with one clear line.
func TestConns_BadLimitFlags(t *testing.T) {
	bin := dtxBinary(t)
	for _, args := range [][]string{
		{"--max-waiters", "0"},
		{"--max-event-streams", "-1"},
		{"--idle-timeout", "0s"},
		{"--max-header-bytes", "10"},
	} {
		out, err := exec.Command(bin, append([]string{"server", "--listen", "127.0.0.1:0", "--store", "sqlite://" + t.TempDir() + "/x.db"}, args...)...).CombinedOutput()
		require.Error(t, err, "%v: %s", args, out)
		require.Contains(t, string(out), args[0], "%v", args)
	}
}
