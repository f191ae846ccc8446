package participant_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeTypedSnippet keeps the README's "Typed handlers" code in step
// with ExampleHandleJSON, which compiles and runs it: the README block
// after the marker must be the example's lines between "// readme:typed-handler"
// and "// readme:end", without their indentation.
func TestReadmeTypedSnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	example, err := os.ReadFile("example_typed_test.go")
	require.NoError(t, err)

	const marker = "<!-- snippet: participant/example_typed_test.go typed-handler -->\n```go\n"
	_, after, ok := strings.Cut(string(readme), marker)
	require.True(t, ok, "README.md lacks the marker %q", marker)
	block, _, ok := strings.Cut(after, "```\n")
	require.True(t, ok, "unterminated code block after the marker")

	_, region, ok := strings.Cut(string(example), "// readme:typed-handler\n")
	require.True(t, ok)
	region, _, ok = strings.Cut(region, "// readme:end\n")
	require.True(t, ok)
	var want strings.Builder
	for _, line := range strings.SplitAfter(region, "\n") {
		want.WriteString(strings.TrimPrefix(line, "\t"))
	}
	require.Equal(t, strings.TrimRight(want.String(), "\t"), block,
		"README.md's typed-handler block differs from ExampleHandleJSON: copy the example's lines")
}
