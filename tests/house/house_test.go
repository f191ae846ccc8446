// Package house checks the import rules of the code's rings (see
// docs/ARCHITECTURE.md) with `go list`, so that a change that breaks them
// fails the tests instead of eroding the layout unnoticed.
package house

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/dtxhq/dtx"

// deps returns the project packages pattern depends on (its transitive
// imports, the package itself included) and the standard-library ones.
func deps(t *testing.T, patterns ...string) (project, std []string) {
	t.Helper()
	args := append([]string{"list", "-deps", "-json=ImportPath,Standard"}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list %v: %v\n%s", patterns, err, ee.Stderr)
	}
	require.NoError(t, err, "go list %v", patterns)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Standard   bool
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		switch {
		case p.Standard:
			std = append(std, p.ImportPath)
		case p.ImportPath == module || strings.HasPrefix(p.ImportPath, module+"/"):
			project = append(project, strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"))
		}
	}
	return project, std
}

func TestHouse_InnerRingsImportOnlyInward(t *testing.T) {
	t.Parallel()
	// Each package may depend on the project packages listed (besides
	// itself); "" is the root vocabulary package.
	allowed := map[string][]string{
		"":                 {},
		"traceparent":      {},
		"appdb":            {},
		"internal/backoff": {},
		"internal/problem": {},
		"api":              {""},
		"callsig":          {""},
		"saga":             {"", "traceparent"},
		"tcc":              {"", "traceparent", "saga"},
		"broker":           {},
		"transport":        {""},
	}
	for pkg, ok := range allowed {
		project, _ := deps(t, path(pkg))
		for _, p := range project {
			if p != pkg && !slices.Contains(ok, p) {
				t.Errorf("%s depends on %s (allowed: %q)", show(pkg), show(p), ok)
			}
		}
	}
}

func TestHouse_NoOuterRingBehindAnInnerOne(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ pkg, forbidden string }{
		{"outbox", "participant"},
		{"outbox", "outbox/pgtail"}, // pglogrepl stays out of the polling relay
		{"inbox", "participant"},
		{"eventstore", "participant"},
		{"eventstore", "coordinator"},
		{"projection", "participant"},
		{"projection", "server"},
		{"saga", "broker"},
		{"saga", "transport/brokertransport"},
		{"client", "server"},
		{"client", "embed"},
		{"participant", "internal/sqlitedb"},
		{"coordinator", "server"},
		{"participant", "broker"},
		{"store/sqlstore", "coordinator"},
		{"dtxtest", "server"}, // the kit drives a coordinator directly
		{"dtxtest", "examples/shop"},
	} {
		project, _ := deps(t, path(c.pkg))
		require.NotContains(t, project, c.forbidden, "%s must not depend on %s", c.pkg, c.forbidden)
	}
}

func TestHouse_BinaryLinksNoTestCode(t *testing.T) {
	t.Parallel()
	project, std := deps(t, path("cmd/dtx"))
	require.NotContains(t, std, "testing", "the dtx binary links package testing")
	for _, p := range project {
		require.False(t, strings.HasSuffix(p, "test") || strings.Contains(p, "test/"),
			"the dtx binary links the test helper %s", p)
	}
}

func show(pkg string) string {
	if pkg == "" {
		return "dtx (root)"
	}
	return pkg
}

func path(pkg string) string {
	if pkg == "" {
		return module
	}
	return module + "/" + pkg
}
