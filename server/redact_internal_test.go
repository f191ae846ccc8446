package server

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactReason(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"aborted by operator":               "aborted by operator",
		"timed out after 30s":               "timed out after 30s",
		"step 0 (pay) failed: HTTP 409: no": "step 0 (pay) failed: " + Hidden,
		"timed out after 1s: last error: x": "timed out after 1s: last error: " + Hidden,
		"branch 1 (p) confirm: still pending after 3 calls; last error: dial tcp 10.0.0.1:22: connection refused": "branch 1 (p) confirm: still pending after 3 calls; last error: " + Hidden,
		// A step name cannot smuggle details out: the first marker wins.
		"step 0 (a) failed: b) failed: secret": "step 0 (a) failed: " + Hidden,
	} {
		require.Equal(t, want, redactReason(in), in)
	}
}
