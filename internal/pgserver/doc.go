// Package pgserver starts and stops throwaway PostgreSQL servers from the
// installed binaries: a new cluster in a directory (initdb), a server on
// 127.0.0.1 and a free port with fsync on, databases created and dropped on
// it. It is used by the dtx binary (the demo's XA pattern, the benches and
// chaos runs on postgres-temp) and, through internal/pgtest, by tests.
//
// The PostgreSQL binaries (initdb, postgres) are taken from the directory
// named by DTX_PG_BIN, else from the directory of pg_ctl on PATH, else from
// the highest version under /usr/lib/postgresql/*/bin; if none is found,
// Start returns an error wrapping ErrNotInstalled.
//
// initdb and postgres refuse to run as root. When the process runs as root
// (as CI does), pgserver runs them as the "postgres" user if it exists, else
// as "nobody", in a directory owned by that user.
package pgserver
