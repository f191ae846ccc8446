// Package pgtest runs throwaway PostgreSQL servers for tests: a thin
// testing.TB wrapper over internal/pgserver, which starts them.
//
// Tests call DSN, which starts one server per test binary on first use (on
// 127.0.0.1, a free port, fsync on) and returns the address of a new, empty
// database that is dropped when the test ends. A package's TestMain should
// call Main so that the shared server is stopped when the tests finish:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without Main the server still dies with the test binary (it is started
// with a parent-death signal), but its temporary directory is left behind.
//
// The PostgreSQL binaries (initdb, postgres) are taken from the directory
// named by DTX_PG_BIN, else from the directory of pg_ctl on PATH, else from
// the highest version under /usr/lib/postgresql/*/bin. If none is found, DSN
// skips the test, unless DTX_REQUIRE_POSTGRES=1, in which case it fails it
// (CI sets that so Postgres tests can never silently skip).
//
// initdb and postgres refuse to run as root. When the process runs as root
// (as CI does), pgtest runs them as the "postgres" user if it exists, else
// as "nobody", in a directory owned by that user.
package pgtest
