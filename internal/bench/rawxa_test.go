package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

// TestRunXAMeasuresRawXA runs the xa bench briefly and checks the raw
// two-branch XA rates of its participants' databases (plain SQL, and
// through participant/xa) are measured in the same run, with the ratios
// to them, in JSON and text.
func TestRunXAMeasuresRawXA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and measures for a second")
	}
	res, err := bench.Run(context.Background(), bench.Config{
		Pattern: "xa", Store: "sqlite", Clients: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Sagas)
	require.Zero(t, res.Errors)
	require.Positive(t, res.RawXA, "the raw XA rate is measured")
	require.InDelta(t, res.PerSec/res.RawXA, res.OfRawXA, 1e-9)
	require.Positive(t, res.RawXALib, "the raw XA rate through participant/xa is measured")
	require.InDelta(t, res.PerSec/res.RawXALib, res.OfRawXALib, 1e-9)
	var b strings.Builder
	res.WriteText(&b)
	require.Contains(t, b.String(), "raw two-branch XA:")
	require.Contains(t, b.String(), "ratio dtx/raw")
	require.Contains(t, b.String(), "raw XA through participant/xa:")
}

// TestRunSagaHasNoRawXA: the raw XA rate belongs to the xa bench only.
func TestRunSagaHasNoRawXA(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	res, err := bench.Run(context.Background(), bench.Config{
		Pattern: "saga", Store: "sqlite", Clients: 1, Duration: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Zero(t, res.RawXA)
	require.Zero(t, res.RawXALib)
	var b strings.Builder
	res.WriteText(&b)
	require.NotContains(t, b.String(), "raw two-branch XA")
}
