package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

// TestBenchCompareFloor runs dtx bench --compare --floor briefly (TCC, a
// dtx server and the floor server, both this test binary running main)
// and checks the floor has rows of its own, marked in JSON, measured like
// the server's: transactions completed without errors, its own CPU per
// transaction read from /proc, and the server's CPU over the floor's.
func TestBenchCompareFloor(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to read the servers' CPU time")
	}
	t.Setenv(runMainEnv, "1")
	exe, err := os.Executable()
	require.NoError(t, err)
	b := runBenchJSON(t, "--compare", "--floor", "--pattern", "tcc", "--store", "sqlite", "--compare-clients", "2",
		"--server-exe", exe, "--rounds", "1", "--duration", "1s", "--warmup", "200ms", "--json")
	require.Contains(t, string(b), `"floor":true`)
	var res bench.CompareResult
	require.NoError(t, json.Unmarshal(b, &res), "%s", b)
	require.Equal(t, "tcc", res.Pattern)
	require.Len(t, res.Rows, 2, "the server and the floor")
	srv, fl := res.Rows[0], res.Rows[1]
	require.False(t, srv.Floor)
	require.True(t, fl.Floor)
	require.Equal(t, bench.FloorName, fl.Server)
	for _, row := range res.Rows {
		require.Equal(t, 2, row.Clients)
		require.Equal(t, 1, row.Rounds)
		require.Positive(t, row.Completed, row.Server)
		require.Zero(t, row.Errors, row.Server)
		require.Positive(t, row.PerSec, row.Server)
		require.GreaterOrEqual(t, row.P99ms, row.P50ms, row.Server)
		require.Positive(t, row.CoordCPUSeconds, "%s used CPU for its transactions", row.Server)
	}
	require.Positive(t, fl.CoordCPUPerTx, "the floor's CPU per transaction, from /proc")
	require.Zero(t, fl.CPUOverFloor)
	if srv.CoordCPUPerTx > 0 {
		require.InDelta(t, srv.CoordCPUPerTx/fl.CoordCPUPerTx, srv.CPUOverFloor, 1e-9)
	}
	var text strings.Builder
	res.WriteText(&text)
	require.Contains(t, text.String(), bench.FloorName)
	require.Contains(t, text.String(), "x_floor")
}

// TestBenchFloorServerBadFlags: the hidden floor server refuses bad flags
// with a usage error, like every command, and so does dtx bench --floor
// without --compare.
func TestBenchFloorServerBadFlags(t *testing.T) {
	var ue usageError
	require.ErrorAs(t, runBenchFloorServer(context.Background(), []string{"--nope"}), &ue)
	require.ErrorAs(t, runBenchFloorServer(context.Background(), []string{"extra"}), &ue)
	require.ErrorAs(t, runBench(context.Background(), []string{"--floor"}), &ue, "--floor without --compare")
}
