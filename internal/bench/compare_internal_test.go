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
