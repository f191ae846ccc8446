package integration_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/pgtest"
)

// runChaos runs `dtx chaos … --json` and returns its JSON line; it fails
// the test unless the run exits 0.
func runChaos(t *testing.T, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(dtxBinary(t), append([]string{"chaos", "--json", "--quiesce-timeout", "60s"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("dtx chaos %v: %v\n%s", args, time.Since(start).Round(time.Second), stderr.String())
	require.NoError(t, err, "dtx chaos must exit 0")
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 1, "stdout is one JSON line")
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &res))
	for _, k := range []string{"faults", "orders", "completed", "cancelled", "stuck", "violations", "planned_faults", "ok"} {
		require.Contains(t, res, k)
	}
	require.EqualValues(t, 0, res["stuck"])
	require.EqualValues(t, 0, res["violations"])
	require.Equal(t, true, res["ok"])
	require.Positive(t, res["orders"].(float64))
	require.Positive(t, res["completed"].(float64))
	require.Positive(t, res["cancelled"].(float64))
	require.EqualValues(t, res["orders"], res["completed"].(float64)+res["cancelled"].(float64))
	faults := res["faults"].(map[string]any)
	for _, k := range res["planned_faults"].([]any) {
		require.Positive(t, faults[k.(string)].(float64), "planned fault %s injected", k)
	}
	return res
}

// TestChaos_Embedded runs the default chaos test (mixed patterns, SQLite,
// embedded NATS): every process crashes at least once under load, and
// afterwards nothing is lost or applied twice.
func TestChaos_Embedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dtx chaos for 20s")
	}
	res := runChaos(t, "--duration", "20s", "--seed", "3")
	require.Equal(t, "mixed", res["pattern"])
	faults := res["faults"].(map[string]any)
	for _, k := range []string{"coordinator_kill", "shop_kill", "participant_down", "broker_restart", "duplicate_request", "fail", "delay", "lose"} {
		require.Positive(t, faults[k].(float64), "fault %s", k)
	}
	require.Len(t, res["by_pattern"].(map[string]any), 3, "orders of saga, tcc and choreography")
}

// TestChaos_PostgresTwoCoordinators runs two coordinators on a throwaway
// PostgreSQL, kills them at random, and checks from the store's history
// that no transaction was driven by two coordinators at once.
func TestChaos_PostgresTwoCoordinators(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dtx chaos for 20s")
	}
	// Skips without PostgreSQL's binaries (fails with DTX_REQUIRE_POSTGRES=1);
	// dtx chaos starts its own throwaway server from the same binaries.
	pgtest.DSN(t)
	res := runChaos(t, "--duration", "20s", "--pattern", "saga", "--store", "postgres-temp", "--coordinators", "2", "--seed", "5")
	require.Equal(t, "postgres", res["store"])
	require.EqualValues(t, 2, res["coordinators"])
	ha := res["ha"].(map[string]any)
	require.EqualValues(t, res["orders"], ha["checked"], "every transaction's history checked")
	require.GreaterOrEqual(t, ha["owners"].(float64), 3.0, "two coordinators and at least one restarted incarnation wrote events")
	require.NotContains(t, ha, "overlaps")
}

// TestChaos_BadInput: usage errors are one line and exit 2.
func TestChaos_BadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	for _, args := range [][]string{
		{"chaos", "--pattern", "xa"},
		{"chaos", "--coordinators", "2"},
		{"chaos", "--duration", "1s"},
		{"chaos", "--store", "oracle"},
		{"chaos", "--pattern", "choreography", "--store", "postgres-temp", "--coordinators", "2"},
	} {
		out, err := exec.Command(dtxBinary(t), args...).CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%v should fail", args)
		require.Equal(t, 2, ee.ExitCode(), "%v: %s", args, out)
		require.Len(t, strings.Split(strings.TrimSpace(string(out)), "\n"), 1, "%v: one line, got %s", args, out)
	}
}
