package mariadbtest

import (
	"testing"

	"github.com/dtxhq/dtx/internal/dbtest"
)

// EnvRequire is the environment variable that, set to "1", turns a missing
// MariaDB installation from a skipped test into a failed one.
const EnvRequire = "DTX_REQUIRE_MARIADB"

var harness = &dbtest.Harness[*Server]{
	Pkg:          "mariadbtest",
	Product:      "MariaDB",
	EnvRequire:   EnvRequire,
	InstallHint:  "install mariadb-server or set " + EnvBinDir,
	NotInstalled: ErrNotInstalled,
	Check:        func() error { _, err := findBinaries(); return err },
	StartServer:  StartServer,
}

// DSN returns the go-sql-driver/mysql DSN of a new, empty database on the
// test binary's shared server (started on first use), dropped when tb ends:
//
//	root@tcp(127.0.0.1:PORT)/t_<random>?clientFoundRows=true&multiStatements=true
//
// If MariaDB is not installed, DSN skips tb, or fails it when the
// environment variable DTX_REQUIRE_MARIADB is "1". Any other start-up
// problem fails tb.
func DSN(tb testing.TB) string {
	tb.Helper()
	return harness.DSN(tb)
}

// Start starts a server for tb alone, stopped and removed when tb ends, with
// DSN's policy for a missing installation. It suits a package whose
// TestMain already belongs to another harness (pgtest.Main), where the
// shared server could not be stopped at the end; it costs a server start
// (about two seconds) per call.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return harness.Start(tb)
}

// missing decides what DSN does with a start-up error: skip (only for a
// missing installation when not required) or fail, and with which message.
func missing(err error, require string) (skip bool, msg string) {
	return harness.Missing(err, require)
}

// Main runs the tests and then stops the shared server, if one was started,
// and removes its files. Use it as a package's TestMain:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
func Main(m *testing.M) { harness.Main(m) }
