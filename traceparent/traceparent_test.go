package traceparent_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/traceparent"
)

const example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseRoundTrip(t *testing.T) {
	tp, ok := traceparent.Parse(example)
	require.True(t, ok)
	require.True(t, tp.Valid())
	require.True(t, tp.Sampled())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", tp.TraceIDString())
	require.Equal(t, byte(0x4b), tp.TraceID[0])
	require.Equal(t, byte(0xb7), tp.SpanID[7])
	require.Equal(t, example, tp.String())

	unsampled, ok := traceparent.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	require.True(t, ok)
	require.False(t, unsampled.Sampled())
}

func TestParseFutureVersion(t *testing.T) {
	// A later version is read by its version-00 prefix; what follows must
	// start with a dash.
	tp, ok := traceparent.Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever")
	require.True(t, ok)
	require.Equal(t, example, tp.String())
	_, ok = traceparent.Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x")
	require.False(t, ok)
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",          // short
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 with extra
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version ff
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero span id
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper case
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // separator
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",       // not hex
		"0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version not hex
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",       // flags not hex
		strings.Repeat("0", 55),
	} {
		_, ok := traceparent.Parse(s)
		require.False(t, ok, "%q", s)
	}
}

func TestChildKeepsTraceNewSpan(t *testing.T) {
	tp, _ := traceparent.Parse(example)
	seen := map[[8]byte]bool{tp.SpanID: true}
	for range 1000 {
		c := tp.Child()
		require.Equal(t, tp.TraceID, c.TraceID)
		require.Equal(t, tp.Flags, c.Flags)
		require.True(t, c.Valid())
		require.False(t, seen[c.SpanID], "span id repeated")
		seen[c.SpanID] = true
		back, ok := traceparent.Parse(c.String())
		require.True(t, ok)
		require.Equal(t, c, back)
	}
}
