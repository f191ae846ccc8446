package bench

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteText_PatternWords: the table counts each pattern's
// transactions in its own words, never "sagas" for TCC or XA.
func TestWriteText_PatternWords(t *testing.T) {
	for pattern, want := range map[string]string{"saga": "100 sagas/s", "tcc": "100 TCC transactions/s", "xa": "100 XA transactions/s"} {
		var out bytes.Buffer
		(&Result{Pattern: pattern, PerSec: 100, Sagas: 50}).WriteText(&out)
		require.Contains(t, out.String(), want, pattern)
		if pattern != "saga" {
			require.NotContains(t, out.String(), "saga", pattern)
		}
	}
}
