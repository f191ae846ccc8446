package dtx_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
)

func TestDuration_Unmarshal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{`"1.5s"`, 1500 * time.Millisecond},
		{`"200ms"`, 200 * time.Millisecond},
		{`250`, 250 * time.Millisecond},
		{`0.5`, 500 * time.Microsecond},
		{`"-1s"`, -time.Second},
		{`"2562047h"`, 2562047 * time.Hour},
	} {
		var d dtx.Duration
		require.NoError(t, json.Unmarshal([]byte(tt.in), &d), tt.in)
		require.Equal(t, tt.want, d.Std(), tt.in)
	}
}

// TestDuration_OutOfRange: numbers and strings past what a time.Duration
// holds are an error that says so, never a wrapped-around (negative)
// duration.
func TestDuration_OutOfRange(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`1e300`, "duration 1e300 ms is out of range"},
		{`-1e300`, "duration -1e300 ms is out of range"},
		{`1e400`, "duration 1e400 ms is out of range"},
		{`9300000000000000`, "is out of range"},
		{`"1000000000h"`, `duration "1000000000h" is out of range (at most 2562047h47m16.854775807s)`},
		{`"99999999999999999999ns"`, "is out of range"},
		{`"5 s"`, `duration "5 s": want a Go duration such as "1.5s"`},
		{`"soon"`, `duration "soon": want a Go duration`},
		{`true`, "duration must be a string"},
	} {
		var d dtx.Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		require.ErrorContains(t, err, tt.want, tt.in)
		require.Zero(t, d, tt.in)
	}
}
