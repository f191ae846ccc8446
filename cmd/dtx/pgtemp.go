package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dtxhq/dtx/internal/pgtest"
)

// startTempPostgres starts a throwaway PostgreSQL server from the installed
// binaries and returns DSNs of fresh databases with the given names on it.
func startTempPostgres(ctx context.Context, names ...string) (dsns []string, label string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "dtx-pg-")
	if err != nil {
		return nil, "", nil, err
	}
	// When running as root the server runs as an unprivileged user, who must
	// be able to enter the directory.
	os.Chmod(dir, 0o755)
	srv, err := pgtest.StartServer(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, pgtest.ErrNotInstalled) {
			return nil, "", nil, fmt.Errorf("this needs PostgreSQL's server binaries (apt-get install postgresql): %w", err)
		}
		return nil, "", nil, fmt.Errorf("start throwaway postgres: %w", err)
	}
	cleanup = func() {
		srv.Stop()
		os.RemoveAll(dir)
	}
	for _, name := range names {
		dsn, err := srv.CreateDB(ctx, name)
		if err != nil {
			cleanup()
			return nil, "", nil, err
		}
		dsns = append(dsns, dsn)
	}
	return dsns, fmt.Sprintf("postgres (throwaway, 127.0.0.1:%d)", srv.Port()), cleanup, nil
}
