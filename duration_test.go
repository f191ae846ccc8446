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

// TestDuration_NumberRefused: a bare JSON number is refused with an error
// that says how to write it, never read in some unit the writer may not
// have meant ("timeout": 5 is not 5 ms).
func TestDuration_NumberRefused(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`5`, `duration 5 is a bare number: write a Go duration string with its unit, such as "5s" or "5ms"`},
		{`250`, `such as "250s" or "250ms"`},
		{`0.5`, `duration 0.5 is a bare number`},
		{`-1`, `duration -1 is a bare number`},
		{`1e300`, `duration 1e300 is a bare number`},
		{`1e400`, `duration 1e400 is a bare number`},
		{`0`, `duration 0 is a bare number`},
	} {
		var d dtx.Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		require.ErrorContains(t, err, tt.want, tt.in)
		require.Zero(t, d, tt.in)
	}
}
