package integration_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/chaos"
	"github.com/dtxhq/dtx/internal/pgha"
)

// TestChaos_HATopology runs a short chaos test on the ha topology: two
// coordinators and the shop on a pg_auto_failover cluster and a three-node
// NATS JetStream cluster (streams R3), the shop switching between saga, TCC
// and choreography at each restart, with the PostgreSQL primary killed (and
// the standby promoted), a NATS node killed and a coordinator cut off from
// the store among the faults. Nothing may be lost, stuck or driven by two
// coordinators at once.
func TestChaos_HATopology(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dtx chaos for 40s")
	}
	exe := dtxBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := chaos.Run(ctx, chaos.Config{
		Exe: exe, Dir: t.TempDir(), Duration: 40 * time.Second, Pattern: chaos.PatternMixed,
		Topology: chaos.TopologyHA, Coordinators: 2, Rate: 10, FaultRate: 0.2, Seed: 11,
		// The failover stalls every write for 10-20s; the backlog it leaves
		// drains slowly on a busy 2-core machine (branch calls time out at
		// 500ms and are retried).
		QuiesceTimeout: 5 * time.Minute, Log: testWriter{t},
	})
	if errors.Is(err, pgha.ErrNotInstalled) && os.Getenv(pgha.EnvRequire) != "1" {
		t.Skipf("skipping: %v (set %s=1 to make this a failure)", err, pgha.EnvRequire)
	}
	require.NoError(t, err)
	t.Logf("PostgreSQL failovers (s): %v; recovery %.1fs", res.PGFailoverS, res.RecoveryS)
	require.Equal(t, chaos.TopologyHA, res.Topology)
	require.Equal(t, "postgres", res.Store)
	require.Zero(t, res.Stuck, "stuck: %v", res.StuckList)
	require.Zero(t, res.Violations, "violations: %v", res.ViolationList)
	require.Empty(t, res.Missing, "every planned fault injected")
	require.Positive(t, res.Faults[string(chaos.PGFailover)])
	require.Positive(t, res.Faults[string(chaos.StorePartition)])
	require.Positive(t, res.Faults[string(chaos.BrokerNodeKill)])
	require.NotContains(t, res.Faults, string(chaos.BrokerRestart), "the cluster's faults are node kills")
	require.Len(t, res.PGFailoverS, int(res.Faults[string(chaos.PGFailover)]))
	require.NotNil(t, res.HA)
	coordinated := 0 // orders with a coordinator transaction: saga and TCC
	for _, p := range []string{chaos.PatternSaga, chaos.PatternTCC} {
		for _, n := range res.ByPattern[p] {
			coordinated += n
		}
	}
	require.Positive(t, res.ByPattern[chaos.PatternChoreography]["completed"]+res.ByPattern[chaos.PatternChoreography]["cancelled"], "choreographed orders ran: %v", res.ByPattern)
	require.Equal(t, coordinated, res.HA.Checked, "every transaction's history checked")
	require.Empty(t, res.HA.Overlaps)
	require.Positive(t, res.Completed)
	require.True(t, res.OK)
}

// testWriter sends a run's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestChaos_TopologyBadInput: a bad --topology, or one that conflicts with
// other flags, is one line and exit 2.
func TestChaos_TopologyBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"chaos", "--topology", "mesh"}, `topology "mesh" is not available (available: single, ha)`},
		{[]string{"chaos", "--topology", "ha", "--store", "sqlite"}, "drop --store"},
		{[]string{"chaos", "--topology", "ha", "--pattern", "choreography"}, "needs saga, tcc or mixed"},
	} {
		out, err := exec.Command(dtxBinary(t), c.args...).CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%v should fail", c.args)
		require.Equal(t, 2, ee.ExitCode(), "%v: %s", c.args, out)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		require.Len(t, lines, 1, "%v: one line, got %s", c.args, out)
		require.Contains(t, lines[0], c.want)
	}
}
