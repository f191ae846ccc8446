package demo_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop/demo"
)

// A small saga demo, in process on SQLite: every order is accounted for,
// nothing is stuck and no invariant is violated.
func TestRunSaga(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Config{
		Pattern: "saga", Orders: 30, Concurrency: 4, FaultRate: 0.2, Seed: 5,
		Dir: t.TempDir(), QuiesceTimeout: time.Minute,
	})
	require.NoError(t, err)
	require.True(t, res.OK(), "violations %v, stuck %v", res.ViolationList, res.StuckList)
	require.Equal(t, 30, res.Orders)
	require.Equal(t, res.Orders, res.Completed+res.Cancelled)
	require.Equal(t, 3, res.DuplicatesSent)
	require.Positive(t, res.BranchCalls)
	require.NotEmpty(t, res.URLs["coordinator"])
	n := 0
	for _, c := range res.CancelReasons {
		n += c
	}
	require.Equal(t, res.Cancelled, n)

	var text strings.Builder
	res.WriteText(&text)
	require.Contains(t, text.String(), "invariants: OK")

	// The JSON form keeps the field names scripts read.
	b, err := json.Marshal(res)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"pattern", "orders", "completed", "cancelled", "stuck", "violations", "elapsed_s", "sagas_per_s",
		"seed", "fault_rate", "branch_calls", "faults_injected", "duplicate_requests", "urls"} {
		require.Contains(t, m, k)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	_, err := demo.Start(context.Background(), demo.Config{Pattern: "nope", Orders: 1, Concurrency: 1})
	require.ErrorContains(t, err, "not available")
	_, err = demo.Start(context.Background(), demo.Config{Pattern: "saga", Orders: 0, Concurrency: 1})
	require.Error(t, err)
}
