package coordinator

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// TestSubmitDigestMatchesDigest: the digest Submit takes from the spec's
// encoding is the one digest computes, for every pattern, with and
// without a trace context (which the digest excludes).
func TestSubmitDigestMatchesDigest(t *testing.T) {
	for _, p := range []dtx.Pattern{dtx.PatternSaga, dtx.PatternTCC, dtx.PatternXA} {
		for _, tp := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
			spec := saga.Spec{GID: "g-1", TraceParent: tp, Steps: []saga.Step{
				{Name: "reserve", Action: "http://127.0.0.1:1/a", Compensate: "http://127.0.0.1:1/c", Payload: json.RawMessage(`{"qty":1}`)},
				{Name: "ship", Action: "http://127.0.0.1:1/s"},
			}}
			raw, err := json.Marshal(&spec)
			require.NoError(t, err)
			require.Equal(t, digest(p, &spec), submitDigest(p, &spec, raw), "pattern %s, traceparent %q", p, tp)
		}
	}
}
