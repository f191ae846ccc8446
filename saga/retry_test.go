package saga_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

func specWithRetry(t *testing.T, retry string) saga.Spec {
	t.Helper()
	var s saga.Spec
	require.NoError(t, json.Unmarshal([]byte(`{"steps":[{"action":"http://a/x","compensate":"http://a/y","retry":`+retry+`}]}`), &s))
	return s
}

func TestRetryPolicy_Validation(t *testing.T) {
	ok := specWithRetry(t, `{"initial":"500ms","multiplier":2,"max_interval":"5s","max_attempts":3,"non_retryable_statuses":[400,404]}`)
	require.NoError(t, ok.Normalize())
	require.Equal(t, 3, ok.Steps[0].Retry.MaxAttempts)
	require.Equal(t, dtx.Duration(500*time.Millisecond), ok.Steps[0].Retry.Initial)

	for _, c := range []struct{ retry, want string }{
		{`{"initial":"1ms"}`, "steps[0].retry.initial: 1ms is outside 10ms..1h0m0s"},
		{`{"initial":"2h"}`, "steps[0].retry.initial"},
		{`{"max_interval":"5ms"}`, "steps[0].retry.max_interval"},
		{`{"initial":"1s","max_interval":"500ms"}`, "steps[0].retry.max_interval: 500ms is below initial 1s"},
		{`{"multiplier":0.5}`, "steps[0].retry.multiplier: 0.5 is outside 1..10"},
		{`{"multiplier":11}`, "steps[0].retry.multiplier"},
		{`{"max_attempts":-1}`, "steps[0].retry.max_attempts: -1 is outside 1..1000"},
		{`{"max_attempts":1001}`, "steps[0].retry.max_attempts"},
		{`{"non_retryable_statuses":[200]}`, "steps[0].retry.non_retryable_statuses: 200 is not an HTTP error status"},
		{`{"non_retryable_statuses":[99]}`, "steps[0].retry.non_retryable_statuses"},
	} {
		s := specWithRetry(t, c.retry)
		err := s.Normalize()
		require.ErrorIs(t, err, dtx.ErrInvalid, c.retry)
		require.ErrorContains(t, err, c.want, c.retry)
	}
}

// TestRetryPolicy_Delay: the first delay is at least initial, each grows by
// the multiplier up to max_interval, and the jitter adds at most a quarter.
func TestRetryPolicy_Delay(t *testing.T) {
	p := &saga.RetryPolicy{Initial: dtx.Duration(time.Second), Multiplier: 3, MaxInterval: dtx.Duration(20 * time.Second)}
	for range 200 {
		for attempt, want := range map[int]time.Duration{1: time.Second, 2: 3 * time.Second, 3: 9 * time.Second, 4: 20 * time.Second, 50: 20 * time.Second} {
			d := p.Delay(time.Hour, time.Hour, attempt)
			require.GreaterOrEqual(t, d, want, "attempt %d", attempt)
			require.LessOrEqual(t, d, want+want/4, "attempt %d", attempt)
		}
	}
	// Unset fields take the caller's base and limit, doubling.
	var zero saga.RetryPolicy
	for range 100 {
		d := zero.Delay(100*time.Millisecond, time.Second, 2)
		require.GreaterOrEqual(t, d, 200*time.Millisecond)
		require.LessOrEqual(t, d, 250*time.Millisecond)
	}
	require.True(t, p.NonRetryable(0) == false)
	p.NonRetryableStatuses = []int{404}
	require.True(t, p.NonRetryable(404))
	require.False(t, p.NonRetryable(400))
	var none *saga.RetryPolicy
	require.False(t, none.NonRetryable(404))
}
