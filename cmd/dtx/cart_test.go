package main

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseWithArgs: dtx cart show takes its flags before or after the
// cart id, and a bad flag is a usage error.
func TestParseWithArgs(t *testing.T) {
	for _, args := range [][]string{{"--url", "u", "7"}, {"7", "--url", "u"}, {"-url=u", "7"}} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		u := fs.String("url", "", "")
		pos, err := parseWithArgs(fs, args)
		require.NoError(t, err, args)
		require.Equal(t, []string{"7"}, pos, args)
		require.Equal(t, "u", *u, args)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	_, err := parseWithArgs(fs, []string{"7", "--nope"})
	var ue usageError
	require.ErrorAs(t, err, &ue)
}
