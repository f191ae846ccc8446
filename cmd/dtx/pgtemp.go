package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dtxhq/dtx/internal/pgtest"
)

// startTempPostgres starts a throwaway PostgreSQL server from the installed
// binaries (for `--store postgres-temp`) and returns a DSN to a fresh
// database on it.
func startTempPostgres(ctx context.Context) (dsn, label string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "dtx-pg-")
	if err != nil {
		return "", "", nil, err
	}
	// When running as root the server runs as an unprivileged user, who must
	// be able to enter the directory.
	os.Chmod(dir, 0o755)
	srv, err := pgtest.StartServer(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, fmt.Errorf("start throwaway postgres: %w", err)
	}
	dsn, err = srv.CreateDB(ctx, "dtx")
	if err != nil {
		srv.Stop()
		os.RemoveAll(dir)
		return "", "", nil, err
	}
	return dsn, fmt.Sprintf("postgres (throwaway, 127.0.0.1:%d)", srv.Port()), func() {
		srv.Stop()
		os.RemoveAll(dir)
	}, nil
}
