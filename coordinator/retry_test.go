package coordinator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
)

func retryPolicy(initial time.Duration, maxAttempts int, statuses ...int) *saga.RetryPolicy {
	return &saga.RetryPolicy{Initial: dtx.Duration(initial), MaxInterval: dtx.Duration(initial), MaxAttempts: maxAttempts,
		NonRetryableStatuses: statuses}
}

func retryCoordinator(t *testing.T, clk *fakeClock, cfg coordinator.Config) *coordinator.Coordinator {
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = time.Second, time.Second
	}
	return newCoordinator(t, st, clk.config(cfg))
}

// TestRetryPolicy_FirstDelayAtLeastInitial: with a policy, the first retry
// waits at least its initial delay (the jitter only adds), not the
// coordinator's backoff, which may draw as little as half of it.
func TestRetryPolicy_FirstDelayAtLeastInitial(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/a" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	c := retryCoordinator(t, clk, coordinator.Config{})
	const initial = 10 * time.Minute
	spec := twoSteps(p, "retry-initial")
	spec.Timeout = dtx.Duration(24 * time.Hour)
	spec.Steps[0].Retry = retryPolicy(initial, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)

	clk.waitPending(t, initial+initial/4)
	require.False(t, clk.pending(initial-time.Millisecond), "the first retry waits at least initial")
	require.Equal(t, 1, p.count("/a"))
	clk.Advance(initial + initial/4)
	d, err := c.Wait(ctx, "retry-initial")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/a"))
}

// TestRetryPolicy_ExhaustedActionCompensates: an action that keeps getting
// unknown outcomes is a definite failure after max_attempts calls: the saga
// compensates, the step itself included (it may have run).
func TestRetryPolicy_ExhaustedActionCompensates(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	c := retryCoordinator(t, clk, coordinator.Config{})
	spec := twoSteps(p, "retry-exhausted")
	spec.Timeout = dtx.Duration(24 * time.Hour)
	spec.Steps[1].Retry = retryPolicy(100*time.Millisecond, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)

	for n := 1; n < 3; n++ {
		require.Eventually(t, func() bool { return p.count("/b") == n }, 10*time.Second, time.Millisecond)
		clk.waitPending(t, time.Second)
		clk.Advance(time.Second)
	}
	d, err := c.Wait(ctx, "retry-exhausted")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "step 1 (b) exhausted its 3 attempts")
	require.Equal(t, 3, p.count("/b"))
	require.Equal(t, 1, p.count("/b-undo"), "the step that may have run is compensated")
	require.Equal(t, 1, p.count("/a-undo"))
}

// TestRetryPolicy_NonRetryableStatus: a status the policy names ends an
// action at once, even one (503) that is otherwise retried.
func TestRetryPolicy_NonRetryableStatus(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	c := retryCoordinator(t, clk, coordinator.Config{})
	spec := twoSteps(p, "retry-nonretryable")
	spec.Steps[1].Retry = retryPolicy(time.Second, 10, http.StatusServiceUnavailable)
	d := submitWait(t, c, spec)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "503")
	require.Equal(t, 1, p.count("/b"))
	require.Equal(t, 1, p.count("/b-undo"))
	require.Equal(t, 1, p.count("/a-undo"))
}

// TestRetryPolicy_ExhaustedCompensationWaitsForOperator: a compensation
// out of attempts is not called again, raises a needs-operator alert, is
// listed under attention with why, and runs again only after RetryNow,
// which grants it a fresh budget.
func TestRetryPolicy_ExhaustedCompensationWaitsForOperator(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		switch {
		case path == "/b":
			return http.StatusBadRequest
		case path == "/a-undo" && n <= 3:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	alerts := make(chan coordinator.Alert, 16)
	c := retryCoordinator(t, clk, coordinator.Config{OnAlert: func(a coordinator.Alert) { alerts <- a }})
	spec := twoSteps(p, "retry-operator")
	spec.Steps[0].Retry = retryPolicy(100*time.Millisecond, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return p.count("/a-undo") == 1 }, 10*time.Second, time.Millisecond)
	clk.waitPending(t, time.Second)
	clk.Advance(time.Second)
	var a coordinator.Alert
	select {
	case a = <-alerts:
	case <-ctx.Done():
		t.Fatal("no alert")
	}
	require.True(t, a.NeedsOperator)
	require.Equal(t, 0, a.Branch)
	require.Equal(t, 2, a.Attempts)
	require.Equal(t, "compensate", a.Op)

	// Listed, with why, even below the query's attempt threshold.
	items, err := c.Attention(ctx, coordinator.AttentionQuery{MinAttempts: 5})
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, "retry-operator", items[0].GID)
	require.Contains(t, strings.Join(items[0].Why, "\n"),
		"compensation of step 0 exhausted its 2 attempts: waiting for an operator (retry or abort --force)")
	require.Equal(t, dtx.StatusCompensating, items[0].Status)

	// Time passes: nothing is called.
	clk.Advance(time.Hour)
	n, err := c.RetryNow(ctx, "retry-operator")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// Call 3 fails too, within the new budget of 2: retried, then it passes.
	require.Eventually(t, func() bool { return p.count("/a-undo") == 3 }, 10*time.Second, time.Millisecond)
	clk.waitPending(t, time.Second)
	clk.Advance(time.Second)
	d, err := c.Wait(ctx, "retry-operator")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Equal(t, 4, p.count("/a-undo"), "no call while it waited for the operator")
}

// TestRetryPolicy_NonRetryableCompensationWaitsForOperator: a compensation
// never gives up, so a non-retryable status parks it at once for an
// operator instead of failing or retrying it.
func TestRetryPolicy_NonRetryableCompensationWaitsForOperator(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		switch {
		case path == "/b":
			return http.StatusBadRequest
		case path == "/a-undo" && n == 1:
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	alerts := make(chan coordinator.Alert, 16)
	c := retryCoordinator(t, clk, coordinator.Config{OnAlert: func(a coordinator.Alert) { alerts <- a }})
	spec := twoSteps(p, "retry-nonretryable-undo")
	spec.Steps[0].Retry = retryPolicy(100*time.Millisecond, 10, http.StatusUnprocessableEntity)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)
	select {
	case a := <-alerts:
		require.True(t, a.NeedsOperator)
		require.Equal(t, 1, a.Attempts)
	case <-ctx.Done():
		t.Fatal("no alert")
	}
	items, err := c.Attention(ctx, coordinator.AttentionQuery{MinAttempts: 5})
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Contains(t, strings.Join(items[0].Why, "\n"),
		"compensation of step 0 got a non-retryable status: waiting for an operator (retry or abort --force)")

	n, err := c.RetryNow(ctx, "retry-nonretryable-undo")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d, err := c.Wait(ctx, "retry-nonretryable-undo")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Equal(t, 2, p.count("/a-undo"))
}
