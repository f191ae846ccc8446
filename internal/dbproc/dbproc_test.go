package dbproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shell returns a Spec running script with sh; ready decides readiness.
func shell(t *testing.T, script string, ready func(ctx context.Context, port int) error) Spec {
	dir := t.TempDir()
	return Spec{
		Prefix:  "fake",
		Name:    "fakedb",
		LogPath: filepath.Join(dir, "fake.log"),
		Command: func(port int) *exec.Cmd { return Command(nil, "/bin/sh", dir, nil, "-c", script) },
		Ready:   ready,
	}
}

var errNotYet = errors.New("not yet")

func TestStartReadyAndStop(t *testing.T) {
	var calls atomic.Int32
	spec := shell(t, "echo hello; exec sleep 60", func(ctx context.Context, port int) error {
		if calls.Add(1) < 3 {
			return errNotYet
		}
		return nil
	})
	p, err := Start(context.Background(), spec)
	require.NoError(t, err)
	require.NotZero(t, p.Port())
	require.Eventually(t, func() bool { return p.LogTail() == "hello" }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Stop(syscall.SIGTERM, 5*time.Second))
	<-p.Exited()
	require.NoError(t, p.Stop(syscall.SIGTERM, 5*time.Second)) // already gone
}

func TestStopKillsAfterTimeout(t *testing.T) {
	spec := shell(t, "trap '' TERM; echo trapped; while :; do sleep 0.1; done", nil)
	spec.Ready = func(context.Context, int) error {
		if b, _ := os.ReadFile(spec.LogPath); string(b) != "trapped\n" {
			return errNotYet
		}
		return nil
	}
	p, err := Start(context.Background(), spec)
	require.NoError(t, err)
	err = p.Stop(syscall.SIGTERM, 200*time.Millisecond)
	require.ErrorContains(t, err, "fake: fakedb did not shut down within 200ms; killed")
	<-p.Exited()
}

func TestExitedDuringStartup(t *testing.T) {
	spec := shell(t, "echo boom >&2; exit 3", func(context.Context, int) error { return errNotYet })
	_, err := Start(context.Background(), spec)
	require.ErrorContains(t, err, "fake: fakedb exited during start-up (exit status 3):\nboom")
	require.NotErrorIs(t, err, ErrPortInUse)
}

func TestPortInUseRetries(t *testing.T) {
	var starts atomic.Int32
	spec := shell(t, "echo 'bind: Address already in use'; exit 1", func(context.Context, int) error { return errNotYet })
	cmd := spec.Command
	spec.Command = func(port int) *exec.Cmd { starts.Add(1); return cmd(port) }
	_, err := Start(context.Background(), spec)
	require.ErrorIs(t, err, ErrPortInUse)
	require.EqualValues(t, portAttempts, starts.Load())
}

func TestNotReadyBeforeDeadline(t *testing.T) {
	spec := shell(t, "exec sleep 60", func(context.Context, int) error { return errNotYet })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, spec)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "fake: fakedb did not become ready: context deadline exceeded (last error: not yet)")
}
