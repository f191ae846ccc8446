package dtx_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
)

// FuzzDurationJSON checks that a Duration read from JSON writes back as a Go
// duration string that reads back to the same value, and that a bare number
// is never read at all (its unit would be a guess): it is an error that
// says to write the unit.
func FuzzDurationJSON(f *testing.F) {
	for _, s := range []string{`"1.5s"`, `"200ms"`, `"-3h"`, `250`, `0.5`, `-1`, `1e300`, `-1e19`,
		`"2562047h47m16.854775807s"`, `"1e3s"`, `""`, `null`, `true`, `"5"`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d dtx.Duration
		err := json.Unmarshal(in, &d)
		if isNumber(in) {
			if err == nil || !strings.Contains(err.Error(), "is a bare number") {
				t.Fatalf("number %q read as %v, %v; want a bare-number error", in, d.Std(), err)
			}
			return
		}
		if err != nil {
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
	})
}

// isNumber reports whether in is one JSON number (and nothing else).
func isNumber(in []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		return false
	}
	_, ok := v.(json.Number)
	return ok
}
