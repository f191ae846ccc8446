// Package dbproc runs throwaway database server processes on loopback: it
// picks a free 127.0.0.1 port, starts the server with its output in a log
// file, tracks its exit, waits until a caller-supplied readiness check
// passes (retrying on another port if the one picked was taken meanwhile),
// and stops or kills it. internal/pgserver and internal/mariadbtest build
// on it.
//
// It does not import testing: internal/pgserver is linked into the dtx
// binary.
package dbproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrPortInUse is matched (errors.Is) by the error of a server that exited
// during start-up because its port was taken; Start retries those.
var ErrPortInUse = errors.New("port already in use")

// portAttempts is how many ports Start tries.
const portAttempts = 5

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Command returns the command running path with args in dir, in the C
// locale and UTC, in its own process group, and killed if the calling
// process dies. cred, if not nil, is the user to run it as. With a nil ctx
// it is not bound to a context (a server outlives its start-up).
func Command(ctx context.Context, path, dir string, cred *syscall.Credential, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, path, args...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = dir // the process user must be able to enter its working directory
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Die with us: nothing leaks if the test binary is killed. Go sets
		// this after switching credentials, so it survives the uid change.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	return cmd
}

// Spec describes a server process for Start.
type Spec struct {
	// Prefix starts error messages ("pgserver").
	Prefix string
	// Name is the server program in messages ("postgres").
	Name string
	// LogPath receives the server's stdout and stderr; it is truncated at
	// each start.
	LogPath string
	// Command returns the command running the server on 127.0.0.1:port
	// (see Command; pass a nil ctx).
	Command func(port int) *exec.Cmd
	// Ready returns nil once the server on port accepts connections. It is
	// called every 50ms with a context of at most a second.
	Ready func(ctx context.Context, port int) error
	// Port, if not zero, is the port to start on (to restart a server
	// where its clients expect it); Start then tries no other port.
	Port int
}

// Proc is a running server process started by Start. Its methods are safe
// for concurrent use.
type Proc struct {
	spec    Spec
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
}

// Start picks a free port (or takes Spec.Port), starts the server on it and waits until it is
// ready. If the server exits because the port was taken in between, it
// tries another port, up to five in all. If the server exits during
// start-up or ctx ends first (the server is then killed), the error says so
// and ends with the tail of the log. ctx bounds the start-up only.
func Start(ctx context.Context, spec Spec) (*Proc, error) {
	for attempt := 1; ; attempt++ {
		p, err := start(ctx, spec)
		if err == nil {
			return p, nil
		}
		if attempt >= portAttempts || spec.Port != 0 || ctx.Err() != nil || !errors.Is(err, ErrPortInUse) {
			return nil, err
		}
	}
}

func start(ctx context.Context, spec Spec) (*Proc, error) {
	port := spec.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("%s: free port: %w", spec.Prefix, err)
		}
	}
	logf, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Prefix, err)
	}
	defer logf.Close() // the child has its own copy
	cmd := spec.Command(port)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", spec.Prefix, spec.Name, err)
	}
	p := &Proc{spec: spec, port: port, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// waitReady polls spec.Ready until it passes, the process exits or ctx
// ends (the process is then killed).
func (p *Proc) waitReady(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.spec.Ready(cctx, p.port)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			log := p.LogTail()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("%s: %s exited during start-up: %w (port %d):\n%s", p.spec.Prefix, p.spec.Name, ErrPortInUse, p.port, log)
			}
			return fmt.Errorf("%s: %s exited during start-up (%v):\n%s", p.spec.Prefix, p.spec.Name, p.waitErr, log)
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("%s: %s did not become ready: %w (last error: %v)\n%s", p.spec.Prefix, p.spec.Name, ctx.Err(), err, p.LogTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (p *Proc) Port() int { return p.port }

// LogPath is the server's log file.
func (p *Proc) LogPath() string { return p.spec.LogPath }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// LogTail returns the last 40 lines of the log.
func (p *Proc) LogTail() string { return TailFile(p.spec.LogPath, 40) }

// TailFile returns the last n lines of the file at path (a process's log,
// for an error message), or the error that kept it from being read.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kill kills the process and waits for it to exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends sig to the process and waits for it to exit, killing it if it
// has not exited within timeout (which is then an error). Stopping a
// process that has exited already does nothing.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil // already gone
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.Kill()
		return nil
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s: %s did not shut down within %v; killed", p.spec.Prefix, p.spec.Name, timeout)
	}
}
