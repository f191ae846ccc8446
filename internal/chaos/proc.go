package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/dtxhq/dtx/internal/dbproc"
)

// proc is a child process (a dtx subcommand) that can be killed and
// started again; it is ready once it has written its ready file.
type proc struct {
	name string
	exe  string
	// args are the command line of a start (the how-manieth call of
	// start: a restart tried again after an early exit is the same start)
	// and of an incarnation (every process started, counting those).
	args    func(start, incarnation int) []string
	ready   string // ready file, removed before each start
	logPath string
	retry   time.Duration // how long start tries again after an early exit

	starts int // calls of start so far
	inc    int // incarnations started so far
	cmd    *exec.Cmd
	done   chan struct{}
}

// start runs the next incarnation and waits until it is ready. An
// incarnation that exits before it is ready, or is not ready within 60s
// (it is then killed), is followed by another one, every half second, for
// p.retry: as a supervisor with a readiness probe would.
func (p *proc) start(ctx context.Context) error {
	until := time.Now().Add(p.retry)
	n := p.starts
	p.starts++
	for {
		err := p.startOnce(ctx, n)
		if err == nil || !(errors.Is(err, errExitedEarly) || errors.Is(err, errNotReady)) || time.Now().After(until) {
			return err
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errExitedEarly is matched by start's error when the process exited
// before it was ready.
var errExitedEarly = errors.New("exited before it was ready")

// errNotReady is matched by start's error when the process was not ready
// in time (and was killed).
var errNotReady = errors.New("not ready after 60s")

func (p *proc) startOnce(ctx context.Context, start int) error {
	os.Remove(p.ready)
	lf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "---- %s incarnation %d, %s\n", p.name, p.inc, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.exe, p.args(start, p.inc)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.inc++
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		if _, err := os.Stat(p.ready); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s %w:\n%s", p.name, errExitedEarly, dbproc.TailFile(p.logPath, 20))
		case <-deadline.C:
			// SIGQUIT first: a Go process writes its goroutines' stacks
			// to its log, which shows where it hung.
			p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			p.kill()
			return fmt.Errorf("%s %w (its goroutines are in %s):\n%s", p.name, errNotReady, p.logPath, dbproc.TailFile(p.logPath, 20))
		case <-ctx.Done():
			p.kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alive reports whether the current incarnation runs.
func (p *proc) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to shut down (SIGTERM) and kills it if it has not
// exited within grace.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// exited reports an incarnation that died on its own (not killed by us).
func (p *proc) exited() bool { return p.cmd != nil && !p.alive() }
