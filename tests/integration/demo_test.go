package integration_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemo_JSONContract runs `dtx demo` as a user would and checks the
// contract of its last line.
func TestDemo_JSONContract(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	for _, pattern := range []string{"saga", "tcc", "xa", "choreography", "saga-async"} {
		// Each demo is a process of its own (temporary directory, free
		// ports); the xa one mostly waits on timeouts.
		t.Run(pattern, func(t *testing.T) { t.Parallel(); testDemo(t, pattern) })
	}
}

func testDemo(t *testing.T, pattern string) {
	cmd := exec.Command(dtxBinary(t), "demo", "--pattern", pattern, "--orders", "150", "--faults", "0.2", "--seed", "3", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "dtx demo failed:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), "last line is one JSON object: %q", lines[len(lines)-1])
	for _, k := range []string{"pattern", "orders", "completed", "cancelled", "stuck", "violations", "elapsed_s", "sagas_per_s"} {
		require.Contains(t, res, k)
	}
	require.Equal(t, pattern, res["pattern"])
	require.EqualValues(t, 150, res["orders"])
	require.EqualValues(t, 0, res["stuck"])
	require.EqualValues(t, 0, res["violations"])
	require.EqualValues(t, 150, res["completed"].(float64)+res["cancelled"].(float64))
	faults := res["faults_injected"].(map[string]any)
	for _, k := range []string{"fail", "delay", "lose"} {
		require.Positive(t, faults[k].(float64), "fault kind %s was injected", k)
	}
	require.Contains(t, stderr.String(), "invariants: OK")
}

// TestDemo_BadInput checks that bad flags end with one clear line and a
// non-zero exit code.
func TestDemo_BadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	for _, args := range [][]string{
		{"demo", "--pattern", "nope"},
		{"shop", "--pattern", "choreography"},
		{"server", "--record-flows", "order-placed"},
		{"demo", "--faults", "2"},
		{"demo", "--orders", "0"},
		{"demo", "--bogus"},
		{"server", "--store", "oracle://x"},
		{"nonsense"},
	} {
		cmd := exec.Command(dtxBinary(t), args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%v should fail", args)
		require.Equal(t, 2, ee.ExitCode(), "%v: usage errors exit 2; output %s", args, out)
		require.Len(t, strings.Split(strings.TrimSpace(string(out)), "\n"), 1, "%v: one clear line, got %s", args, out)
	}
}
