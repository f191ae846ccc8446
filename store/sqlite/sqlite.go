// Package sqlite is the embedded default dtx.Store: one SQLite file (WAL,
// synchronous=FULL) written through a single group-commit writer.
package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is the SQLite dialect of sqlstore.
var Dialect = sqlstore.Dialect{
	Name:       "sqlite",
	Migrations: mustSub(migrations, "migrations"),
	Writers:    1, // SQLite has one writer; more would only queue on the lock.
	Override: sqlstore.Statements{
		// There is no index by lease owner (migration 003): the renewal
		// walks the unfinished transactions on dtx_tx_status.
		Renew: `UPDATE dtx_tx INDEXED BY dtx_tx_status SET lease_until = $1
			WHERE lease_owner = $2 AND status IN ('running', 'compensating')`,
	},
	IsUniqueViolation: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
	},
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Open opens (creating and migrating) the store in the SQLite file at path.
// An existing file must be an intact SQLite database (checked with
// `PRAGMA quick_check` up to QuickCheckMaxBytes) and not empty, unless path
// ends with "?init_empty=1" (see InitEmptyParam).
func Open(ctx context.Context, path string, cfg sqlstore.Config) (*sqlstore.Store, error) {
	path, initEmpty, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	size, err := checkFile(path, initEmpty)
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(ctx, path, 8)
	if err != nil {
		if size > 0 && isCorruption(err) {
			return nil, corrupt(path, err.Error())
		}
		return nil, err
	}
	if err := quickCheck(ctx, db, path, size); err != nil {
		db.Close()
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, db, Dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	st, err := sqlstore.Open(ctx, db, Dialect, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}
