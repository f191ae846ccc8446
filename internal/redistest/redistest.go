// Package redistest runs throwaway Redis servers for tests.
//
// Start launches Debian's redis-server (from PATH, /usr/bin or
// /usr/sbin) on 127.0.0.1 and a free port, without persistence, in its
// own temporary directory, waits until it answers PING, and stops it when
// the test ends. Redis cannot listen on port 0, so Start picks a port the
// kernel offers for 127.0.0.1:0 and retries with another one if
// redis-server fails to bind it.
//
// If redis-server is not installed, Start skips the test, unless
// DTX_REQUIRE_REDIS=1, in which case it fails it (CI sets that so the
// Redis tests can never silently skip).
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvRequire is the environment variable that, set to "1", turns a missing
// redis-server from a skipped test into a failed one.
const EnvRequire = "DTX_REQUIRE_REDIS"

// Server is a running throwaway redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Binary finds redis-server.
func Binary() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("redistest: redis-server not found (install redis-server)")
}

// Start runs a redis-server for tb and stops it when tb ends. See the
// package documentation for skipping.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("%v, and %s=1", err, EnvRequire)
		}
		tb.Skip(err)
	}
	var errs []error
	for range 5 {
		s, err := start(tb, bin)
		if err == nil {
			return s
		}
		errs = append(errs, err)
	}
	tb.Fatalf("redistest: cannot start redis-server: %v", errors.Join(errs...))
	return nil
}

func start(tb testing.TB, bin string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := tb.TempDir()
	var log bytes.Buffer
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, strings.TrimSpace(log.String()))
		default:
		}
		if err := ping(s.Addr); err == nil {
			break
		} else if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on port %d not ready: %v", port, err)
		}
		select {
		case <-s.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Cleanup(s.stop)
	return s, nil
}

// Stop kills the server (it is also stopped when the test ends); the
// next command to it fails, as with a crashed Redis.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// ping sends PING and expects +PONG: the server accepts commands.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
