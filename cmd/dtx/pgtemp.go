package main

import (
	"context"

	"github.com/dtxhq/dtx/internal/pgserver"
)

// startTempPostgres starts a throwaway PostgreSQL server from the installed
// binaries and returns DSNs of fresh databases with the given names on it.
func startTempPostgres(ctx context.Context, names ...string) (dsns []string, label string, cleanup func(), err error) {
	t, err := pgserver.StartTemp(ctx, names...)
	if err != nil {
		return nil, "", nil, err
	}
	return t.DSNs, t.Label, t.Close, nil
}
