package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// TestRetryPolicy_InvalidIs400NamingTheField: a bad retry policy on a saga
// step or a TCC participant is refused with the field in the detail.
func TestRetryPolicy_InvalidIs400NamingTheField(t *testing.T) {
	e := newEnv(t, nil)
	sg := e.spec("bad-retry")
	sg.Steps[1].Retry = &saga.RetryPolicy{MaxAttempts: 2000}
	requireProblem(t, e.do(t, "POST", "/v1/sagas", sg), http.StatusBadRequest, "steps[1].retry.max_attempts", "1..1000")
	sg.Steps[1].Retry = &saga.RetryPolicy{Initial: dtx.Duration(time.Millisecond)}
	requireProblem(t, e.do(t, "POST", "/v1/sagas", sg), http.StatusBadRequest, "steps[1].retry.initial")

	tc := tcc.Spec{GID: "bad-retry-tcc", Participants: []tcc.Participant{
		{Name: "x", Try: e.part.URL + "/x", Confirm: e.part.URL + "/x-ok", Cancel: e.part.URL + "/x-no",
			Retry: &saga.RetryPolicy{Multiplier: 20}},
	}}
	requireProblem(t, e.do(t, "POST", "/v1/tcc", tc), http.StatusBadRequest, "retry.multiplier")
	tc.Participants[0].Retry = nil
	tc.OnConfirmFailure = "later"
	requireProblem(t, e.do(t, "POST", "/v1/tcc", tc), http.StatusBadRequest, "on_confirm_failure", `"later"`)
}

// TestRetryPolicy_OperatorReleasesAParkedCompensation: through the API, a
// compensation out of attempts is listed by /v1/attention with why, and
// POST /v1/transactions/{gid}/retry lets it run again to the end.
func TestRetryPolicy_OperatorReleasesAParkedCompensation(t *testing.T) {
	var fixed atomic.Bool
	e := newEnv(t, func(path string) int {
		switch {
		case path == "/charge":
			return http.StatusConflict
		case path == "/release" && !fixed.Load():
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	sg := e.spec("parked")
	sg.Steps[0].Retry = &saga.RetryPolicy{Initial: dtx.Duration(10 * time.Millisecond), MaxAttempts: 2}
	r := e.do(t, "POST", "/v1/sagas", sg)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)

	const why = "compensation of step 0 exhausted its 2 attempts: waiting for an operator (retry or abort --force)"
	var item api.AttentionItem
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/v1/attention?min_attempts=5", nil)
		var out struct {
			Items []api.AttentionItem `json:"transactions"`
		}
		if r.code != http.StatusOK || json.Unmarshal(r.body, &out) != nil || len(out.Items) != 1 {
			return false
		}
		item = out.Items[0]
		return len(item.Why) > 0 && item.Why[0] == why
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "parked", item.GID)
	require.Equal(t, dtx.StatusCompensating, item.Status)
	require.Equal(t, 2, item.Branches[0].CompensateAttempts)

	fixed.Store(true)
	r = e.do(t, "POST", "/v1/transactions/parked/retry", nil)
	require.Equal(t, http.StatusAccepted, r.code, "body: %s", r.body)
	var rr api.RetryResponse
	require.NoError(t, json.Unmarshal(r.body, &rr))
	require.Equal(t, 1, rr.Retried, "the parked compensation is released")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.c.Wait(ctx, "parked")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Equal(t, 3, d.Branches[0].CompensateAttempts)
}
