package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

// runMainEnv makes the test binary run dtx's main instead of the tests, so
// that a test can start it as `dtx server` (os.Executable is the test
// binary).
const runMainEnv = "DTX_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchCompare runs dtx bench --compare briefly against two separate
// server processes side by side (this test binary running main, named
// twice as --server-exe) and checks the JSON figures are sane: every
// server and client count measured in every round, sagas completed without
// errors, the servers' own CPU read from /proc.
func TestBenchCompare(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to read the server's CPU time")
	}
	t.Setenv(runMainEnv, "1")
	exe, err := os.Executable()
	require.NoError(t, err)
	b := runBenchJSON(t, "--compare", "--store", "sqlite", "--compare-clients", "1,2",
		"--server-exe", exe+","+exe, "--rounds", "2", "--duration", "300ms", "--warmup", "100ms", "--json")
	var res bench.CompareResult
	require.NoError(t, json.Unmarshal(b, &res), "%s", b)
	require.Equal(t, "saga", res.Pattern)
	require.Equal(t, 2, res.Rounds)
	require.Len(t, res.Rows, 4, "2 client counts x 2 servers")
	name := filepath.Base(exe)
	cpu := map[string]float64{}
	for i, row := range res.Rows {
		require.Equal(t, []int{1, 1, 2, 2}[i], row.Clients)
		require.Equal(t, []string{name + "#1", name + "#2"}[i%2], row.Server)
		require.Equal(t, "sqlite", row.Store)
		require.Equal(t, 2, row.Rounds)
		require.Positive(t, row.Completed)
		require.Zero(t, row.Errors)
		require.Positive(t, row.PerSec)
		require.Positive(t, row.P50ms)
		require.GreaterOrEqual(t, row.P99ms, row.P50ms)
		require.GreaterOrEqual(t, row.CoordCPUPerTx, 0.0, "the server's CPU, in 10 ms ticks, may round to 0 in a short round")
		require.GreaterOrEqual(t, row.HostCPUBusy, 0.0)
		require.LessOrEqual(t, row.HostCPUBusy, 1.0)
		cpu[row.Server] += row.CoordCPUSeconds
	}
	for server, s := range cpu {
		require.Positive(t, s, "server %s used CPU for its sagas", server)
	}
	var text strings.Builder
	res.WriteText(&text)
	require.Contains(t, text.String(), "coord_cpu_ms/tx")
	require.Contains(t, text.String(), "separate dtx server process")
}

func TestBenchCompareBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--compare", "--pattern", "xa"},
		{"--compare", "--compare-clients", "1,x"},
		{"--compare", "--compare-clients", "0"},
		{"--compare", "--rounds", "0"},
		{"--compare", "--store", " , "},
		{"--compare", "--store", "postgres://u@127.0.0.1:1/x", "--server-exe", "a,b"},
	} {
		err := runBench(context.Background(), args)
		var ue usageError
		require.ErrorAs(t, err, &ue, "%v", args)
	}
}

func TestSetGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	require.False(t, setGCPercent(400, "50"), "GOGC set: left alone")
	require.Equal(t, 100, debug.SetGCPercent(100))
	require.True(t, setGCPercent(400, ""))
	require.Equal(t, 400, debug.SetGCPercent(100))
}

// runBenchJSON runs dtx bench with args, its standard output going to a
// file, and returns what it printed there.
func runBenchJSON(t *testing.T, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.json")
	f, err := os.Create(out)
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = f
	err = runBench(context.Background(), args)
	os.Stdout = stdout
	f.Close()
	require.NoError(t, err)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	return b
}
