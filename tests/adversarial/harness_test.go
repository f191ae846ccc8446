package adversarial_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// dtxBinary builds cmd/dtx once per test binary.
func dtxBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("adversarial tests run real processes; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dtx-adv-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dtx")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/dtxhq/dtx/cmd/dtx")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// serverOpts configures startServer.
type serverOpts struct {
	// Store is the store DSN (default: a SQLite file in the test's dir).
	Store string
	// FDLimit, if positive, is the process's open-file limit (ulimit -n).
	FDLimit int
	// Args are extra flags for `dtx server`.
	Args []string
}

// server is a `dtx server` process started by a test.
type server struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	// Addr is where it listens (host:port, read from its ready file).
	Addr string
	// URL is "http://" + Addr.
	URL string
}

// startServer runs `dtx server` on a port the kernel picks and waits until
// it answers /healthz. The process is SIGKILLed when the test ends.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	bin := dtxBinary(t)
	dir := t.TempDir()
	if o.Store == "" {
		o.Store = "sqlite://" + filepath.Join(dir, "dtx.db")
	}
	ready := filepath.Join(dir, "ready")
	s := &server{done: make(chan struct{}), logPath: filepath.Join(dir, "server.log")}
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--store", o.Store,
		"--retry-base", "20ms", "--retry-max", "500ms", "--log-level", "warn", "--ready-file", ready}, o.Args...)
	var cmd *exec.Cmd
	if o.FDLimit > 0 {
		// The shell lowers its own limit, then becomes dtx.
		cmd = exec.Command("/bin/sh", append([]string{"-c", "ulimit -n " + strconv.Itoa(o.FDLimit) + ` && exec "$0" "$@"`, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	lf, err := os.Create(s.logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	s.cmd = cmd
	go func() { cmd.Wait(); lf.Close(); close(s.done) }()
	t.Cleanup(s.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if s.Addr == "" {
			if b, err := os.ReadFile(ready); err == nil && len(bytes.TrimSpace(b)) > 0 {
				s.Addr = strings.TrimSpace(string(b))
				s.URL = "http://" + s.Addr
			}
		}
		if s.Addr != "" && s.Healthy() {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("dtx server exited early:\n%s", s.Log())
		case <-ctx.Done():
			t.Fatalf("dtx server did not become healthy:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Healthy reports whether /healthz answers 200 within 5s.
func (s *server) Healthy() bool {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.URL + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log returns what the process wrote so far.
func (s *server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Exited reports whether the process is gone.
func (s *server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// reply is an HTTP answer read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map (failing the test if it is not JSON).
func (r reply) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// do sends one request with a bounded time and reads the whole answer.
func do(t *testing.T, method, url, contentType string, body []byte, header map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	require.NoError(t, err)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// postJSON sends v as application/json.
func postJSON(t *testing.T, url string, v any) reply {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return do(t, http.MethodPost, url, "application/json", b, nil)
}

// requireProblem checks a problem+json answer with the wanted status whose
// detail (or title) contains every one of want.
func requireProblem(t *testing.T, r reply, status int, want ...string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json"),
		"content type %q, body %s", r.Header.Get("Content-Type"), r.Body)
	m := r.JSON(t)
	text := fmt.Sprint(m["title"], " ", m["detail"])
	for _, w := range want {
		require.Contains(t, text, w)
	}
}
