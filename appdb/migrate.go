package appdb

import (
	"context"
	"database/sql"
)

// Tx is the part of an open transaction that Migrate needs.
type Tx interface {
	// Exec runs one statement without parameters.
	Exec(ctx context.Context, stmt string) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Beginner begins the transaction Migrate runs in. FromSQL adapts a
// database/sql database; other drivers need a few lines of their own (see
// package participant/pgxbarrier).
type Beginner interface {
	Begin(ctx context.Context) (Tx, error)
}

// Migrate runs stmts in order in one transaction of db and commits it; on
// the first error it rolls back and returns that error as the driver
// returned it, for the caller to wrap. Schema statements are written to be
// safe to run on every start, concurrently from several processes (CREATE
// ... IF NOT EXISTS, and on PostgreSQL an advisory lock first).
func Migrate(ctx context.Context, db Beginner, stmts []string) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// FromSQL adapts a database/sql database to Beginner.
func FromSQL(db *sql.DB) Beginner { return sqlDB{db} }

type sqlDB struct{ db *sql.DB }

func (d sqlDB) Begin(ctx context.Context) (Tx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx}, nil
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Exec(ctx context.Context, stmt string) error {
	_, err := t.tx.ExecContext(ctx, stmt)
	return err
}

func (t sqlTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }
