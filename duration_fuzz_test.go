package dtx_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
)

// FuzzDurationJSON checks that a Duration read from JSON writes back as a Go
// duration string that reads back to the same value, and that a bare number
// is read as that many milliseconds (with its sign), never as a value that
// wrapped around.
func FuzzDurationJSON(f *testing.F) {
	for _, s := range []string{`"1.5s"`, `"200ms"`, `"-3h"`, `250`, `0.5`, `-1`, `1e300`, `-1e19`,
		`"2562047h47m16.854775807s"`, `"1e3s"`, `""`, `null`, `true`, `"5"`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d dtx.Duration
		if err := json.Unmarshal(in, &d); err != nil {
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal(%v) (read from %q): %v", d.Std(), in, err)
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("%q (read from %q) is not a JSON string", out, in)
		}
		if p, err := time.ParseDuration(s); err != nil || p != d.Std() {
			t.Fatalf("%q (read from %q) parses as %v, %v; want %v", s, in, p, err, d.Std())
		}
		var back dtx.Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Fatalf("%q (read from %q) reads back as %v, %v; want %v", out, in, back.Std(), err, d.Std())
		}
		var ms float64
		if json.Unmarshal(in, &ms) == nil {
			want := ms * float64(time.Millisecond)
			got := float64(d.Std())
			if math.Abs(got-want) > 1+math.Abs(want)*1e-9 {
				t.Fatalf("%q read as %v (%g ns), want %g ns", in, d.Std(), got, want)
			}
		}
	})
}
