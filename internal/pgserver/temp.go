package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Temp is a throwaway server in a temporary directory, with databases
// created on it; Close stops the server and removes the directory.
type Temp struct {
	// DSNs are the connection URLs of the databases, in the order of
	// their names.
	DSNs []string
	// Label describes the server for people: "postgres (throwaway, 127.0.0.1:port)".
	Label string

	srv *Server
	dir string
}

// StartTemp starts a throwaway PostgreSQL server from the installed
// binaries and creates fresh databases with the given names on it.
func StartTemp(ctx context.Context, names ...string) (*Temp, error) {
	return StartTempWith(ctx, Options{}, names...)
}

// LogicalReplication are the server settings a log-tailing relay needs
// (outbox/pgtail): wal_level=logical and room for a few slots.
var LogicalReplication = map[string]string{"wal_level": "logical", "max_replication_slots": "16", "max_wal_senders": "16"}

// StartTempWith is StartTemp with server options.
func StartTempWith(ctx context.Context, opts Options, names ...string) (*Temp, error) {
	dir, err := os.MkdirTemp("", "dtx-pg-")
	if err != nil {
		return nil, err
	}
	// When running as root the server runs as an unprivileged user, who must
	// be able to enter the directory.
	os.Chmod(dir, 0o755)
	srv, err := StartWith(ctx, dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, ErrNotInstalled) {
			return nil, fmt.Errorf("this needs PostgreSQL's server binaries (apt-get install postgresql): %w", err)
		}
		return nil, fmt.Errorf("start throwaway postgres: %w", err)
	}
	t := &Temp{srv: srv, dir: dir, Label: fmt.Sprintf("postgres (throwaway, 127.0.0.1:%d)", srv.Port())}
	for _, name := range names {
		dsn, err := srv.CreateDB(ctx, name)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.DSNs = append(t.DSNs, dsn)
	}
	return t, nil
}

// Close stops the server and removes its files.
func (t *Temp) Close() {
	t.srv.Stop()
	os.RemoveAll(t.dir)
}

// TempBase is the directory to create a server's directory in: the usual
// temporary directory, or /tmp if PostgreSQL must run as another user that
// could not reach it.
func TempBase() string {
	base := os.TempDir()
	if cred, err := runAs(); err == nil && cred != nil {
		if checkTraversable(filepath.Join(base, "x"), cred) != nil {
			return "/tmp"
		}
	}
	return base
}
