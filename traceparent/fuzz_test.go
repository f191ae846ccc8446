package traceparent_test

import (
	"regexp"
	"testing"

	"github.com/dtxhq/dtx/traceparent"
)

// shape is the W3C traceparent grammar Parse implements: version, trace id,
// span id and flags in lower-case hex, and for versions after 00 anything
// after a further dash.
var shape = regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$`)

// FuzzParse checks Parse against the specification's grammar, and that an
// accepted value formats to a version-00 header that parses back to the same
// value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, ok := traceparent.Parse(s)
		m := shape.FindStringSubmatch(s)
		want := m != nil && m[1] != "ff" && !(m[1] == "00" && m[5] != "") &&
			m[2] != "00000000000000000000000000000000" && m[3] != "0000000000000000"
		if ok != want {
			t.Fatalf("Parse(%q) ok=%v, the grammar says %v", s, ok, want)
		}
		if !ok {
			if tp != (traceparent.TraceParent{}) {
				t.Fatalf("Parse(%q) refused but returned %+v", s, tp)
			}
			return
		}
		if !tp.Valid() {
			t.Fatalf("Parse(%q) accepted an invalid value %+v", s, tp)
		}
		out := tp.String()
		if len(out) != 55 || out[:3] != "00-" || out[3:] != s[3:55] {
			t.Fatalf("Parse(%q).String() = %q, want version 00 with the same ids and flags", s, out)
		}
		back, ok := traceparent.Parse(out)
		if !ok || back != tp {
			t.Fatalf("Parse(%q) = %+v, formats as %q, which parses to %+v, %v", s, tp, out, back, ok)
		}
		if tp.TraceIDString() != s[3:35] {
			t.Fatalf("TraceIDString() = %q, want %q", tp.TraceIDString(), s[3:35])
		}
		child := tp.Child()
		if child.TraceID != tp.TraceID || !child.Valid() || child.Flags != tp.Flags {
			t.Fatalf("Child() of %+v = %+v: want the same trace and flags, a valid span", tp, child)
		}
	})
}
