package coordinator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// fakeClock is a manual clock for coordinator.Config.Now and .After: time
// stands still until Advance, which fires the waits it passes.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []fakeWait
}

type fakeWait struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	// Stores keep milliseconds: start on a whole one, far from the real
	// time so that a coordinator reading the real clock would be noticed.
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waits = append(c.waits, fakeWait{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every wait that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waits[:0]
	for _, w := range c.waits {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waits = kept
}

// pending reports whether someone waits for a moment at most within of
// now (waits nobody listens to any more are counted too: the coordinator
// makes a new one each time round its loop).
func (c *fakeClock) pending(within time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waits {
		if !w.at.After(c.now.Add(within)) {
			return true
		}
	}
	return false
}

// waitPending waits until someone waits on the clock for at most within.
func (c *fakeClock) waitPending(t *testing.T, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return c.pending(within) }, 10*time.Second, time.Millisecond,
		"nobody waits on the fake clock for %v or less", within)
}

func (c *fakeClock) config(cfg coordinator.Config) coordinator.Config {
	cfg.Now, cfg.After = c.Now, c.After
	return cfg
}

// TestClock_BackoffWaitsForTheClock: a retry after an unknown outcome
// happens when its backoff has passed on the coordinator's clock, not
// before, and does not need the real time to pass.
func TestClock_BackoffWaitsForTheClock(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/a" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	const base = 10 * time.Minute
	c := newCoordinator(t, st, clk.config(coordinator.Config{RetryBase: base, RetryMax: base}))
	spec := twoSteps(p, "clock-backoff")
	spec.Timeout = dtx.Duration(24 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)

	// The driver waits for the retry (jittered within [base/2, base]);
	// the first call is its only one so far.
	clk.waitPending(t, base)
	require.False(t, clk.pending(base/2-time.Millisecond), "the backoff is at least half the base")
	require.Equal(t, 1, p.count("/a"))

	clk.Advance(base / 2)
	if p.count("/a") == 1 {
		// Not due yet (the jitter took more than half): the rest of it.
		clk.Advance(base / 2)
	}
	d, err := c.Wait(ctx, "clock-backoff")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/a"))
	require.Equal(t, 1, p.count("/b"))
	require.Equal(t, clk.Now().UnixMilli(), d.UpdatedAt.UnixMilli(), "the store is written with the coordinator's clock")
	require.Equal(t, newFakeClock().Now().UnixMilli(), d.CreatedAt.UnixMilli())
}

// TestClock_SagaDeadline: a saga whose step keeps failing with an unknown
// outcome is compensated once its timeout has passed on the coordinator's
// clock.
func TestClock_SagaDeadline(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	c := newCoordinator(t, st, clk.config(coordinator.Config{RetryBase: time.Minute, RetryMax: time.Minute}))
	spec := twoSteps(p, "clock-deadline")
	spec.Timeout = dtx.Duration(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)

	// b failed once and waits for its retry, a minute away.
	clk.waitPending(t, time.Minute)
	require.Equal(t, 1, p.count("/b"))
	tx, _, err := st.Get(ctx, "clock-deadline")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, tx.Status)
	require.True(t, clk.Now().Add(time.Hour).Equal(tx.Deadline), "the deadline is set by the coordinator's clock: %v", tx.Deadline)

	// Past the deadline, the due retry is dropped: compensation instead.
	clk.Advance(time.Hour)
	d, err := c.Wait(ctx, "clock-deadline")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "timed out after 1h0m0s")
	require.Contains(t, d.Reason, "502")
	require.Equal(t, 1, p.count("/b"), "no retry once the deadline passed")
	require.Equal(t, 1, p.count("/b-undo"))
	require.Equal(t, 1, p.count("/a-undo"))
}

// TestClock_LeaseExpiry: a coordinator that stops renewing loses its
// transactions to another one when its lease has expired on their clock.
func TestClock_LeaseExpiry(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	const ttl = time.Hour
	// Never started: it neither renews nor recovers; its retry of b waits
	// for a day.
	dead, err := coordinator.New(st, httptransport.New(nil), clk.config(coordinator.Config{
		Owner: "dead", LeaseTTL: ttl, RetryBase: 24 * time.Hour, RetryMax: 24 * time.Hour, MaxTimeout: 72 * time.Hour,
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := twoSteps(p, "clock-lease")
	spec.Timeout = dtx.Duration(48 * time.Hour)
	_, _, err = dead.Submit(ctx, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/b") == 1 }, 10*time.Second, time.Millisecond)

	obs := &recorder{}
	heir := newCoordinator(t, st, clk.config(coordinator.Config{Owner: "heir", LeaseTTL: ttl, Observer: obs}))
	// The heir's recovery passes (every 50ms of real time) find nothing to
	// claim while the lease lasts; its first pass ran in Start.
	tx, _, err := st.Get(ctx, "clock-lease")
	require.NoError(t, err)
	require.Equal(t, "dead", tx.LeaseOwner)
	require.Zero(t, heir.Active())

	clk.Advance(ttl + time.Millisecond)
	d, err := heir.Wait(ctx, "clock-lease")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/b"))
	require.Equal(t, 1, p.count("/a"), "a finished step is not repeated")
	require.Equal(t, 1, obs.claimedTotal())
	dead.Close(ctx)
}
