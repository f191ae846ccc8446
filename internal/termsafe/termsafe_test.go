package termsafe_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/termsafe"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain ascii: 42 [ok]", "plain ascii: 42 [ok]"},
		{"Grüße, 注文 ✓", "Grüße, 注文 ✓"},
		{"clear\x1b[2Jscreen", `clear\x1b[2Jscreen`},
		{"title\x1b]0;x\x07", `title\x1b]0;x\x07`},
		{"line\nbreak\ttab\rcr", `line\nbreak\ttab\rcr`},
		{"del\x7f", `del\x7f`},
		{"c1 csi \u009b2J", `c1 csi \x9b2J`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`},
		{"bad utf8 \xff\xfe", `bad utf8 \xff\xfe`},
	} {
		require.Equal(t, c.want, termsafe.String(c.in), "%q", c.in)
	}
}

type status string

type item struct {
	Name    string
	Status  status
	Tags    []string
	Counts  map[status]int
	Nested  *item
	Raw     []byte
	private string
}

func TestValue(t *testing.T) {
	v := &item{
		Name: "a\x1bb", Status: "s\x07", Tags: []string{"ok", "t\x1b"},
		Counts: map[status]int{"k\x1b": 1, "fine": 2},
		Nested: &item{Name: "n\x1b"}, Raw: []byte("r\x1b"), private: "p\x1b",
	}
	termsafe.Value(v)
	require.Equal(t, `a\x1bb`, v.Name)
	require.Equal(t, status(`s\x07`), v.Status)
	require.Equal(t, []string{"ok", `t\x1b`}, v.Tags)
	require.Equal(t, map[status]int{`k\x1b`: 1, "fine": 2}, v.Counts)
	require.Equal(t, `n\x1b`, v.Nested.Name)
	require.Equal(t, []byte("r\x1b"), v.Raw, "raw bytes are decoded and escaped by the caller")
	require.Equal(t, "p\x1b", v.private, "unexported fields are not reachable")
}
