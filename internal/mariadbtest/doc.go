// Package mariadbtest runs throwaway MariaDB servers for tests and
// benchmarks, the MySQL-family counterpart of internal/pgtest.
//
// Tests call DSN, which starts one server per test binary on first use (on
// 127.0.0.1, a free port, a socket in its own temporary directory,
// innodb_flush_log_at_trx_commit=1) and returns the go-sql-driver/mysql DSN
// of a new, empty database that is dropped when the test ends. A package's
// TestMain should call Main so that the shared server is stopped when the
// tests finish:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
//
// Without Main the server still dies with the test binary (it is started
// with a parent-death signal), but its temporary directory is left behind.
//
// The binaries (mariadbd and mariadb-install-db, or the older mysqld and
// mysql_install_db names) are taken from the directory named by
// DTX_MARIADB_BIN, else from PATH, /usr/sbin, /usr/bin and /usr/local. On
// Debian they come with the mariadb-server package. If none is found, DSN
// skips the test, unless DTX_REQUIRE_MARIADB=1, in which case it fails it
// (CI sets that so MariaDB tests can never silently skip).
//
// The data directory is created with mariadb-install-db, whose
// --auth-root-authentication-method=normal gives root@127.0.0.1 an empty
// password, so no grant tables need to be skipped. mariadbd refuses to run
// as root unless told to: when the process runs as root (as CI does), the
// server is started with --user=root, so its files stay owned by root and
// any temporary directory works.
package mariadbtest
