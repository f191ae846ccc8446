package coordinator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
)

// gatedParticipant blocks its "/b" call until release is closed; entered
// is closed when that call arrives.
func gatedParticipant(t *testing.T) (p *participant, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	p = newParticipant(t, nil)
	p.behaveCtx = func(ctx context.Context, path string, n int) int {
		if path == "/b" {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return http.StatusOK
	}
	return p, entered, release
}

type waitResult struct {
	d   *dtx.TxDetail
	err error
}

func waitAsync(ctx context.Context, c *coordinator.Coordinator, gid string) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		d, err := c.Wait(ctx, gid)
		done <- waitResult{d, err}
	}()
	return done
}

// TestWait_WokenByTheDriver: waiting on a transaction this coordinator
// drives needs no polling: the coordinator's clock never moves, yet the
// waiters get the final state once the last step answers.
func TestWait_WokenByTheDriver(t *testing.T) {
	p, entered, release := gatedParticipant(t)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	c := newCoordinator(t, st, clk.config(coordinator.Config{}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := twoSteps(p, "wait-local")
	spec.Timeout = dtx.Duration(24 * time.Hour)
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)
	<-entered // driven here, blocked in b

	const waiters = 3
	var dones []<-chan waitResult
	for range waiters {
		dones = append(dones, waitAsync(ctx, c, "wait-local"))
	}
	require.Eventually(t, func() bool { return c.Waiting("wait-local") == waiters }, 10*time.Second, time.Millisecond)
	require.False(t, clk.pending(time.Hour), "a waiter on a local transaction polls nothing")

	close(release)
	for _, done := range dones {
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, dtx.StatusSucceeded, r.d.Status)
	}
	require.Zero(t, c.Waiting("wait-local"))
}

// TestWait_OtherCoordinatorPolls: a transaction another coordinator
// process drives (sharing the store) is read from the store every
// WaitPollInterval of the waiter's clock: the waiter learns of its end at
// the next poll, not before.
func TestWait_OtherCoordinatorPolls(t *testing.T) {
	p, entered, release := gatedParticipant(t)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	driverClk, waiterClk := newFakeClock(), newFakeClock()
	driver := newCoordinator(t, st, driverClk.config(coordinator.Config{Owner: "driver"}))
	// Not started: it claims nothing, so the transaction stays the
	// driver's.
	waiter, err := coordinator.New(st, nil, waiterClk.config(coordinator.Config{Owner: "waiter"}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := twoSteps(p, "wait-remote")
	spec.Timeout = dtx.Duration(24 * time.Hour)
	_, _, err = driver.Submit(ctx, spec)
	require.NoError(t, err)
	<-entered

	done := waitAsync(ctx, waiter, "wait-remote")
	waiterClk.waitPending(t, coordinator.WaitPollInterval) // read once: running; next read scheduled
	close(release)
	d, err := driver.Wait(ctx, "wait-remote")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	select {
	case r := <-done:
		t.Fatalf("the waiter learnt of the end before its next poll: %+v", r)
	default:
	}

	waiterClk.Advance(coordinator.WaitPollInterval)
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, dtx.StatusSucceeded, r.d.Status)
}
