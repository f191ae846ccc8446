package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

func TestRunSagaOnSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	res, err := bench.Run(context.Background(), bench.Config{
		Pattern: "saga", Store: "sqlite", Clients: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Sagas)
	require.Zero(t, res.Errors)
	require.Positive(t, res.RawCommits)
	var b strings.Builder
	res.WriteText(&b)
	require.Contains(t, b.String(), "throughput")
	require.Positive(t, res.InProcessCPUPerTx, "the process used CPU for its sagas")
	require.Positive(t, res.InProcessCPUCores)
	requireShare(t, res.HostCPUBusy)
	require.Contains(t, b.String(), "ms per saga in process")
}

// requireShare checks a host busy share: within [0, 1], or -1 where the
// host has no /proc/stat.
func requireShare(t *testing.T, v float64) {
	t.Helper()
	if _, err := os.Stat("/proc/stat"); err != nil {
		require.Equal(t, -1.0, v)
		return
	}
	require.GreaterOrEqual(t, v, 0.0)
	require.LessOrEqual(t, v, 1.0)
}

func TestRunEventsOnSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	res, err := bench.RunEvents(context.Background(), bench.Config{
		Pattern: "events", Store: "sqlite", Broker: "embedded", Clients: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
		CPUProfile: prof, Idle: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Consumed)
	require.Positive(t, res.RawCommits, "the producer store's commit rate is measured in the same run")
	require.GreaterOrEqual(t, res.IdleCPUCores, 0.0, "the idle period is measured")
	require.Equal(t, "sqlite", res.Dialect)
	require.Positive(t, res.InProcessCPUPerEvent)
	requireShare(t, res.HostCPUBusy)
	fi, err := os.Stat(prof)
	require.NoError(t, err, "--cpuprofile applies to the events bench")
	require.Positive(t, fi.Size())
	var b strings.Builder
	res.WriteText(&b)
	require.Contains(t, b.String(), "ms per event in process")
	require.Contains(t, b.String(), "single-row commits/s on the producer's store")
	require.Contains(t, b.String(), "without events")
}
