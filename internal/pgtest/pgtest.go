package pgtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dtxhq/dtx/internal/dbtest"
)

// EnvRequire is the environment variable that, set to "1", turns a missing
// PostgreSQL installation from a skipped test into a failed one.
const EnvRequire = "DTX_REQUIRE_POSTGRES"

var harness = &dbtest.Harness[*Server]{
	Pkg:          "pgtest",
	Product:      "PostgreSQL",
	EnvRequire:   EnvRequire,
	InstallHint:  "install PostgreSQL or set " + EnvBinDir,
	NotInstalled: ErrNotInstalled,
	TempBase:     tempBase,
	StartServer:  StartServer,
}

// DSN returns the connection URL of a new, empty database on the test
// binary's shared server (started on first use), dropped when tb ends.
//
// If PostgreSQL is not installed, DSN skips tb, or fails it when the
// environment variable DTX_REQUIRE_POSTGRES is "1". Any other start-up
// problem fails tb.
func DSN(tb testing.TB) string {
	tb.Helper()
	return harness.DSN(tb)
}

// tempBase is the directory to create the shared server's directory in:
// the usual temporary directory, or /tmp if PostgreSQL must run as another
// user that could not reach it.
func tempBase() string {
	base := os.TempDir()
	if cred, err := runAs(); err == nil && cred != nil {
		if checkTraversable(filepath.Join(base, "x"), cred) != nil {
			return "/tmp"
		}
	}
	return base
}

// missing decides what DSN does with a start-up error: skip (only for a
// missing installation when not required) or fail, and with which message.
func missing(err error, require string) (skip bool, msg string) {
	return harness.Missing(err, require)
}

// Main runs the tests and then stops the shared server, if one was started,
// and removes its files. Use it as a package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { harness.Main(m) }
