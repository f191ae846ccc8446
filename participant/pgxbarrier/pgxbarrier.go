package pgxbarrier

import (
	"context"
	"fmt"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/jackc/pgx/v5"
)

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and pgx.Tx (for
// a nested savepoint transaction) all implement it.
type Beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// postgres returns b with the Postgres dialect, whatever b.Dialect says:
// pgx only speaks PostgreSQL.
func postgres(b participant.Barrier) participant.Barrier {
	b.Dialect = appdb.Postgres
	return b
}

// Migrate creates b's barrier table if it does not exist (see
// participant.Barrier.Migrate). b.Dialect is ignored.
func Migrate(ctx context.Context, db Beginner, b participant.Barrier) error {
	stmts, err := postgres(b).Schema()
	if err != nil {
		return err
	}
	if err := appdb.Migrate(ctx, migrator{db}, stmts); err != nil {
		return fmt.Errorf("pgxbarrier: migrate: %w", err)
	}
	return nil
}

// migrator adapts a Beginner to appdb.Beginner.
type migrator struct{ db Beginner }

func (m migrator) Begin(ctx context.Context) (appdb.Tx, error) {
	tx, err := m.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return migrateTx{tx}, nil
}

type migrateTx struct{ pgx.Tx }

func (t migrateTx) Exec(ctx context.Context, stmt string) error {
	_, err := t.Tx.Exec(ctx, stmt)
	return err
}

// Do is participant.Barrier.Do on pgx: it runs fn inside one transaction
// begun on db together with the barrier row for br. fn is not called for a
// duplicate delivery or a null compensation (Do returns nil) nor for a
// hanging action (Do returns participant.ErrHanging). If fn returns an
// error, the transaction, barrier rows included, is rolled back and the
// error is returned unchanged. b.Dialect is ignored (always PostgreSQL).
func Do(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, b participant.Barrier, br participant.Branch, fn func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgxbarrier: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	run, err := postgres(b).Enter(ctx, txExecer{tx}, br)
	if err != nil {
		return err
	}
	if run {
		if err := fn(tx); err != nil {
			return err
		}
	}
	committed = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgxbarrier: commit: %w", err)
	}
	return nil
}

// txExecer adapts pgx.Tx to participant.TxExecer.
type txExecer struct{ tx pgx.Tx }

func (t txExecer) ExecAffected(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t txExecer) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	var v string
	err := t.tx.QueryRow(ctx, query, args...).Scan(&v)
	return v, err
}
