// Package sqlitedb opens a participant's own SQLite database with the
// settings the barrier, the outbox and the inbox need (modernc.org/sqlite,
// no cgo): WAL journal, synchronous=FULL so a commit survives power loss, a
// 30 s busy timeout, and BEGIN IMMEDIATE so that concurrent writers queue
// for SQLite's one writer instead of failing on a lock upgrade.
//
//	db, err := sqlitedb.Open(ctx, "inventory.db")
//	err = participant.Barrier{}.Migrate(ctx, db) // the zero Barrier is SQLite's
//
// It is a package of its own so that a participant on PostgreSQL or MySQL
// does not link the SQLite driver.
package sqlitedb

import (
	"context"
	"database/sql"

	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// Open opens (creating it and its directory if needed) the SQLite database
// file at path, with a pool of 8 connections.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	return sqlitedb.Open(ctx, path, 0)
}

// OpenPool is Open with a pool of maxConns connections (0: 8). Writes are
// serialized by SQLite whatever the pool; more connections serve more
// concurrent reads.
func OpenPool(ctx context.Context, path string, maxConns int) (*sql.DB, error) {
	return sqlitedb.Open(ctx, path, maxConns)
}
