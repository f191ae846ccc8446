package coordinator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/tcc"
)

// TestTCC_OnConfirmFailureOperator (seed F9): under on_confirm_failure
// "operator", a confirm that fails is called once and parked: the
// transaction stays confirming, an alert fires, attention lists it, no
// call follows however much time passes, and an operator's retry drives
// it to the end.
func TestTCC_OnConfirmFailureOperator(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/money/confirm" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	clk := newFakeClock()
	alerts := make(chan coordinator.Alert, 16)
	c := retryCoordinator(t, clk, coordinator.Config{OnAlert: func(a coordinator.Alert) { alerts <- a }})
	spec := tcc.Spec{GID: "f9-operator", OnConfirmFailure: tcc.ConfirmOperator, Timeout: dtx.Duration(24 * time.Hour),
		Participants: []tcc.Participant{
			{Name: "stock", Try: p.url("/stock/try"), Confirm: p.url("/stock/confirm"), Cancel: p.url("/stock/cancel")},
			{Name: "money", Try: p.url("/money/try"), Confirm: p.url("/money/confirm"), Cancel: p.url("/money/cancel")},
		}}
	sg, err := spec.Saga()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err = c.SubmitPattern(ctx, dtx.PatternTCC, sg)
	require.NoError(t, err)

	var a coordinator.Alert
	select {
	case a = <-alerts:
	case <-ctx.Done():
		t.Fatal("no alert")
	}
	require.True(t, a.NeedsOperator)
	require.Equal(t, "confirm", a.Op)
	require.Equal(t, "money.confirm", a.Name)
	require.Equal(t, 1, a.Attempts)

	items, err := c.Attention(ctx, coordinator.AttentionQuery{MinAttempts: 5})
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, dtx.StatusRunning, items[0].Status, "still confirming: neither succeeded nor cancelled")
	require.Contains(t, strings.Join(items[0].Why, "\n"), "confirm of step 3 failed and is tried once: waiting for an operator")

	// Time passes: no retry, no cancel.
	clk.Advance(time.Hour)
	tx, _, err := c.Store().Get(ctx, "f9-operator")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, tx.Status)
	require.Equal(t, 1, p.count("/money/confirm"))
	require.Zero(t, p.count("/money/cancel")+p.count("/stock/cancel"), "a failed confirm never cancels")

	n, err := c.RetryNow(ctx, "f9-operator")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d, err := c.Wait(ctx, "f9-operator")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/money/confirm"))
	require.Equal(t, 1, p.count("/stock/confirm"))
}

// TestTCC_OnConfirmFailureRetryIsTheDefault: without the policy (or with
// "retry") a failed confirm is retried by the coordinator on its own.
func TestTCC_OnConfirmFailureRetryIsTheDefault(t *testing.T) {
	for _, policy := range []string{"", tcc.ConfirmRetry} {
		p := newParticipant(t, func(path string, n int) int {
			if path == "/money/confirm" && n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		clk := newFakeClock()
		c := retryCoordinator(t, clk, coordinator.Config{})
		spec := tcc.Spec{GID: "f9-retry", OnConfirmFailure: policy, Timeout: dtx.Duration(24 * time.Hour),
			Participants: []tcc.Participant{
				{Name: "money", Try: p.url("/money/try"), Confirm: p.url("/money/confirm"), Cancel: p.url("/money/cancel")},
			}}
		sg, err := spec.Saga()
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, _, err = c.SubmitPattern(ctx, dtx.PatternTCC, sg)
		require.NoError(t, err)
		for range 2 {
			clk.waitPending(t, time.Second)
			clk.Advance(time.Second)
		}
		d, err := c.Wait(ctx, "f9-retry")
		cancel()
		require.NoError(t, err)
		require.Equal(t, dtx.StatusSucceeded, d.Status, "policy %q", policy)
		require.Equal(t, 3, p.count("/money/confirm"))
	}
}
