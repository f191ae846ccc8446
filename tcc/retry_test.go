package tcc_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// TestTCC_RetryPolicyFlowsIntoSteps: a participant's retry policy is every
// one of its steps' (try, confirm, cancel), and is validated as theirs.
func TestTCC_RetryPolicyFlowsIntoSteps(t *testing.T) {
	e := newEnv(t, nil)
	s := e.spec("tcc-policy")
	pol := &saga.RetryPolicy{Initial: dtx.Duration(500 * time.Millisecond), MaxAttempts: 3, NonRetryableStatuses: []int{400, 404}}
	s.Participants[1].Retry = pol
	sg, err := s.Saga()
	require.NoError(t, err)
	require.NoError(t, sg.Normalize())
	n := 0
	for _, st := range sg.Steps {
		if st.Name == "stock.try" || st.Name == "stock.confirm" {
			require.Equal(t, pol, st.Retry, st.Name)
			n++
		} else {
			require.Nil(t, st.Retry, st.Name)
		}
	}
	require.Equal(t, 2, n, "the try step (with its cancel) and the confirm step")

	s.Participants[1].Retry = &saga.RetryPolicy{MaxAttempts: 5000}
	sg, err = s.Saga()
	require.NoError(t, err)
	require.ErrorContains(t, sg.Normalize(), ".retry.max_attempts: 5000 is outside 1..1000")
}

// TestTCC_TryOutOfAttemptsCancels: a try that keeps answering 503 is a
// definite failure after its max_attempts (seed F6: 3 attempts): every
// participant is cancelled, nothing confirmed.
func TestTCC_TryOutOfAttemptsCancels(t *testing.T) {
	e := newEnv(t, func(path string, n int) int {
		if path == "/money/reserve" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := e.spec("tcc-exhausted")
	s.Participants[2].Retry = &saga.RetryPolicy{Initial: dtx.Duration(10 * time.Millisecond), MaxAttempts: 3}
	d := e.run(t, s)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "exhausted its 3 attempts")
	log := e.log()
	require.Equal(t, 3, countOf(log, "/money/reserve try"))
	require.Contains(t, log, "/money/cancel cancel", "a try that may have run is cancelled")
	require.Contains(t, log, "/stock/cancel cancel")
	for _, c := range log {
		require.NotContains(t, c, "confirm")
	}
}

func countOf(log []string, s string) int {
	n := 0
	for _, c := range log {
		if c == s {
			n++
		}
	}
	return n
}

// TestTCC_OnConfirmFailurePolicy: "operator" gives every confirm one
// attempt (keeping the rest of its participant's policy) and leaves tries
// and cancels alone; an unknown policy is refused naming the field.
func TestTCC_OnConfirmFailurePolicy(t *testing.T) {
	e := newEnv(t, nil)
	s := e.spec("tcc-f9")
	pol := &saga.RetryPolicy{Initial: dtx.Duration(500 * time.Millisecond), MaxAttempts: 3, NonRetryableStatuses: []int{400}}
	s.Participants[1].Retry = pol
	s.OnConfirmFailure = tcc.ConfirmOperator
	sg, err := s.Saga()
	require.NoError(t, err)
	require.NoError(t, sg.Normalize())
	confirms := 0
	for _, st := range sg.Steps {
		switch {
		case st.ActionOp == dtx.OpConfirm:
			confirms++
			require.NotNil(t, st.Retry, st.Name)
			require.Equal(t, 1, st.Retry.MaxAttempts, st.Name)
			if st.Name == "stock.confirm" {
				require.Equal(t, pol.Initial, st.Retry.Initial)
				require.Equal(t, pol.NonRetryableStatuses, st.Retry.NonRetryableStatuses)
			}
		case st.Name == "stock.try":
			require.Equal(t, pol, st.Retry, "the try keeps its policy")
		default:
			require.Nil(t, st.Retry, st.Name)
		}
	}
	require.Equal(t, 3, confirms)
	require.Equal(t, 3, pol.MaxAttempts, "the participant's policy is not changed")

	s.OnConfirmFailure = "ask-bob"
	_, err = s.Saga()
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, `on_confirm_failure: "ask-bob" is not "retry" or "operator"`)
}
