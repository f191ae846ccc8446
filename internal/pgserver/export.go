package pgserver

import "syscall"

// BinDir returns the directory holding the PostgreSQL server binaries
// (initdb, postgres, pg_ctl), found as Start finds it; the error wraps
// ErrNotInstalled.
func BinDir() (string, error) { return findBinDir() }

// RunAs returns the credentials PostgreSQL must run with: nil unless the
// process runs as root, then those of "postgres" or "nobody".
func RunAs() (*syscall.Credential, error) { return runAs() }

// CheckTraversable reports an error if cred's user cannot enter dir's
// parent directories (see Start's note on running as root).
func CheckTraversable(dir string, cred *syscall.Credential) error {
	return checkTraversable(dir, cred)
}
