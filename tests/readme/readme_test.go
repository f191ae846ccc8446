// Package readme checks that the Go code in README.md is the code the
// tests compile and run: every ```go block preceded by a
// "<!-- from: path -->" line must appear, line for line, in that file.
package readme

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var fromBlock = regexp.MustCompile("(?s)<!-- from: (\\S+) -->\n```go\n(.*?)\n```")

func TestReadme_GoSnippetsMatchCompiledCode(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := fromBlock.FindAllStringSubmatch(string(readme), -1)
	if len(found) < 5 {
		t.Fatalf("README.md has %d Go snippets marked <!-- from: path -->; want the 5 of \"Use it from Go\"", len(found))
	}
	for _, m := range found {
		src, err := os.ReadFile(filepath.Join("..", "..", m[1]))
		if err != nil {
			t.Errorf("README.md quotes %s: %v", m[1], err)
			continue
		}
		if !strings.Contains(string(src), m[2]) {
			t.Errorf("README.md's snippet from %s is not in that file any more; copy it again:\n%s", m[1], m[2])
		}
	}
	// Blocks marked "<!-- snippet: … -->" are checked by the test of the
	// package they come from (participant's TestReadmeTypedSnippet).
	checkedElsewhere := len(regexp.MustCompile("<!-- snippet: \\S+ [^>]*-->\n```go\n").FindAllString(string(readme), -1))
	if strings.Count(string(readme), "```go\n") != len(found)+checkedElsewhere {
		t.Errorf("README.md has %d Go blocks but %d are marked <!-- from: path --> (and %d <!-- snippet: … -->): mark each with the file it comes from",
			strings.Count(string(readme), "```go\n"), len(found), checkedElsewhere)
	}
}
