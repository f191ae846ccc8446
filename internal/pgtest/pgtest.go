package pgtest

import (
	"context"
	"testing"

	"github.com/dtxhq/dtx/internal/dbtest"
	"github.com/dtxhq/dtx/internal/pgserver"
)

// Server is a running PostgreSQL server (see internal/pgserver).
type Server = pgserver.Server

// ErrNotInstalled is returned (wrapped) by StartServer when no PostgreSQL
// binaries can be found.
var ErrNotInstalled = pgserver.ErrNotInstalled

// EnvBinDir names a directory holding initdb and postgres; it overrides the
// search of PATH and /usr/lib/postgresql.
const EnvBinDir = pgserver.EnvBinDir

// StartServer starts a server of its own in dir: see pgserver.Start.
func StartServer(ctx context.Context, dir string) (*Server, error) { return pgserver.Start(ctx, dir) }

// EnvRequire is the environment variable that, set to "1", turns a missing
// PostgreSQL installation from a skipped test into a failed one.
const EnvRequire = "DTX_REQUIRE_POSTGRES"

var harness = &dbtest.Harness[*Server]{
	Pkg:          "pgtest",
	Product:      "PostgreSQL",
	EnvRequire:   EnvRequire,
	InstallHint:  "install PostgreSQL or set " + EnvBinDir,
	NotInstalled: ErrNotInstalled,
	TempBase:     pgserver.TempBase,
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

// Start starts a server for tb alone, stopped and removed when tb ends, with
// DSN's policy for a missing installation. It suits tests that leave
// prepared transactions behind on failure (they would block dropping a
// database of the shared server); it costs a server start per call.
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
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { harness.Main(m) }

// Options adjust a server started by StartWith (see pgserver.Options).
type Options = pgserver.Options

// StartWith is Start with server options, for instance
// Options{Settings: map[string]string{"wal_level": "logical"}}.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	h := &dbtest.Harness[*Server]{
		Pkg:          harness.Pkg,
		Product:      harness.Product,
		EnvRequire:   harness.EnvRequire,
		InstallHint:  harness.InstallHint,
		NotInstalled: harness.NotInstalled,
		TempBase:     harness.TempBase,
		StartServer: func(ctx context.Context, dir string) (*Server, error) {
			return pgserver.StartWith(ctx, dir, opts)
		},
	}
	return h.Start(tb)
}
