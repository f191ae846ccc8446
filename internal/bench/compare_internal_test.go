package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePidStat(t *testing.T) {
	// A command name with a space and a parenthesis, as proc(5) allows.
	line := []byte("4242 (dtx (x) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 12345 0 0\n")
	d, err := parsePidStat(line)
	require.NoError(t, err)
	require.Equal(t, 2870*time.Millisecond, d)
	_, err = parsePidStat([]byte("4242 (dtx) S 1 2"))
	require.Error(t, err)
	_, err = parsePidStat([]byte("no name"))
	require.Error(t, err)
}

func TestMedian(t *testing.T) {
	require.Equal(t, 0.0, median(nil))
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
}

func TestServerNames(t *testing.T) {
	require.Equal(t, []string{"dtx"}, serverNames([]string{"/usr/bin/dtx"}))
	require.Equal(t, []string{"before", "after"}, serverNames([]string{"/tmp/before", "/tmp/after"}))
	require.Equal(t, []string{"dtx#1", "dtx#2"}, serverNames([]string{"/a/dtx", "/b/dtx"}))
}

func TestSummarize(t *testing.T) {
	row := summarize("dtx", "sqlite", 8, []roundFigures{
		{count: 100, errs: 1, cpu: 50 * time.Millisecond, perSec: 100, p50: 2, p99: 9, cpuPerTx: 0.5, hostBusy: 0.5},
		{count: 300, cpu: 90 * time.Millisecond, perSec: 300, p50: 1, p99: 5, cpuPerTx: 0.3, hostBusy: 0.9},
		{count: 200, cpu: 80 * time.Millisecond, perSec: 200, p50: 3, p99: 7, cpuPerTx: 0.4, hostBusy: 0.7},
	})
	require.Equal(t, CompareRow{Server: "dtx", Store: "sqlite", Clients: 8, Rounds: 3, Completed: 600, Errors: 1,
		PerSec: 200, P50ms: 2, P99ms: 7, CoordCPUPerTx: 0.4, HostCPUBusy: 0.7, CoordCPUSeconds: 0.22}, roundCPU(row))
}

// roundCPU rounds the summed CPU seconds (float addition) for comparison.
func roundCPU(r CompareRow) CompareRow {
	r.CoordCPUSeconds = float64(int(r.CoordCPUSeconds*1000+0.5)) / 1000
	return r
}
