package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dtx-it-bin-")
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

// proc is a dtx process started by a test.
type proc struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	// addr is where a dtx server listens (read from its ready file).
	addr string
}

// startServer runs `dtx server` and waits until it answers. With addr ""
// it listens on a port the kernel picks (never one a test guessed free),
// read back from its ready file; a restart passes the first one's addr
// again, since the shop was told that address.
func startServer(t *testing.T, addr, store, logPath string, extra ...string) *proc {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ready := filepath.Join(t.TempDir(), "ready")
	args := append([]string{"server", "--listen", addr, "--store", store, "--lease-ttl", "1s",
		"--retry-base", "20ms", "--retry-max", "500ms", "--log-level", "warn", "--ready-file", ready}, extra...)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(dtxBinary(t), args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(); lf.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.addr == "" {
			if b, err := os.ReadFile(ready); err == nil {
				p.addr = strings.TrimSpace(string(b))
			}
		}
		if p.addr != "" {
			resp, err := http.Get("http://" + p.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dtx server on %s did not become healthy", addr)
		}
		// Poll again shortly, unless the process is gone.
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("dtx server exited early:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, strings.TrimSpace(last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
