package participant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
)

// ErrHanging is returned by Barrier.Do for an action that arrives after its
// compensation already ran, or after a compensation was recorded as a null
// compensation because the action had not arrived yet. The action must not
// run: the transaction has already been rolled back past it. ErrHanging is
// permanent (dtx.IsPermanent), so WriteError answers 409.
var ErrHanging error = dtx.Permanent(errors.New("participant: operation arrived after its compensation (hanging request); not executed"))

// undoes maps each compensating operation to the operation it undoes. A
// compensating operation that finds its paired operation never ran is a
// null compensation, and it bars that operation from running later. Every
// operation not listed (as key or value) is a plain idempotent operation.
var undoes = map[dtx.Op]dtx.Op{
	dtx.OpCompensate: dtx.OpAction, // saga
	"cancel":         "try",        // TCC
}

// DefaultTable is the barrier table name used when Barrier.Table is empty.
const DefaultTable = "dtx_barrier"

// Barrier makes branch operations idempotent and safe against null
// compensation and hanging actions by recording each operation in a table of
// the participant's own database, in the same local transaction as the
// operation's writes. The zero value uses SQLite and the table dtx_barrier.
type Barrier struct {
	// Dialect is the SQL flavour of the database. With appdb.MySQL
	// (MySQL or MariaDB, InnoDB) a concurrent duplicate waits on the first
	// delivery's row lock like the others; a waiter that finds the first
	// delivery rolled back may, rarely, get a deadlock error instead of
	// running: a transient error the coordinator retries.
	Dialect appdb.Dialect
	// Table is the barrier table (default "dtx_barrier"); it may be
	// schema-qualified ("schema.table").
	Table string
}

// dialectSQL is every statement the barrier runs, for one dialect, with
// the table name written {table} (see appdb.Dialect.Expand) and ?
// parameters.
type dialectSQL struct {
	schema []string
	insert string // args: gid, branch, op, origin
	origin string // args: gid, branch, op; returns origin
}

var dialects = map[appdb.Dialect]dialectSQL{
	appdb.SQLite: {
		schema: []string{`CREATE TABLE IF NOT EXISTS {table} (
	gid        TEXT    NOT NULL,
	branch     INTEGER NOT NULL,
	op         TEXT    NOT NULL,
	origin     TEXT    NOT NULL,
	created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	PRIMARY KEY (gid, branch, op)
) WITHOUT ROWID`},
		insert: `INSERT INTO {table} (gid, branch, op, origin) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		origin: `SELECT origin FROM {table} WHERE gid = ? AND branch = ? AND op = ?`,
	},
	appdb.Postgres: {
		schema: []string{
			// Serialise concurrent migrations: CREATE TABLE IF NOT EXISTS
			// can still fail on a race in the catalog.
			`SELECT pg_advisory_xact_lock(7418880017520716355)`,
			`CREATE TABLE IF NOT EXISTS {table} (
	gid        TEXT        NOT NULL,
	branch     INTEGER     NOT NULL,
	op         TEXT        NOT NULL,
	origin     TEXT        NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (gid, branch, op)
)`},
		insert: `INSERT INTO {table} (gid, branch, op, origin) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		origin: `SELECT origin FROM {table} WHERE gid = ? AND branch = ? AND op = ?`,
	},
	appdb.MySQL: {
		// VARBINARY keys match byte for byte (a utf8mb4 collation would
		// fold case and ignore trailing spaces). The lengths cover what
		// Branch.validate accepts, so INSERT IGNORE cannot truncate.
		// Concurrent CREATE TABLE IF NOT EXISTS is safe in InnoDB.
		schema: []string{`CREATE TABLE IF NOT EXISTS {table} (
	gid        VARBINARY(256) NOT NULL,
	branch     INT            NOT NULL,
	op         VARBINARY(32)  NOT NULL,
	origin     VARBINARY(32)  NOT NULL,
	created_at TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (gid, branch, op)
) ENGINE=InnoDB`},
		// On a duplicate key InnoDB takes a shared lock on the existing
		// row, so a concurrent insert of the same key waits for the first
		// to commit (0 rows: duplicate) or roll back (1 row: inserted).
		insert: `INSERT IGNORE INTO {table} (gid, branch, op, origin) VALUES (?, ?, ?, ?)`,
		origin: `SELECT origin FROM {table} WHERE gid = ? AND branch = ? AND op = ?`,
	},
}

// queries returns the dialect's statements with the table name filled in.
func (b Barrier) queries() (dialectSQL, error) {
	q, ok := dialects[b.Dialect]
	if !ok {
		return dialectSQL{}, fmt.Errorf("participant: unsupported barrier dialect %v", b.Dialect)
	}
	table := b.Table
	if table == "" {
		table = DefaultTable
	}
	t, err := appdb.ParseTable(table, 0)
	if err != nil {
		return dialectSQL{}, fmt.Errorf("participant: invalid barrier table name %q", table)
	}
	x := func(s string) string { return b.Dialect.Rebind(b.Dialect.Expand(t, s)) }
	out := dialectSQL{insert: x(q.insert), origin: x(q.origin)}
	for _, s := range q.schema {
		out.schema = append(out.schema, b.Dialect.Expand(t, s))
	}
	return out, nil
}

// Schema returns the statements that create the barrier table if it does
// not exist, to be run in order in one transaction. Migrate runs them on a
// database/sql database; drivers without database/sql can run them
// directly.
func (b Barrier) Schema() ([]string, error) {
	q, err := b.queries()
	if err != nil {
		return nil, err
	}
	return q.schema, nil
}

// Migrate creates the barrier table if it does not exist. It is safe to
// call on every start, concurrently from several processes.
func (b Barrier) Migrate(ctx context.Context, db *sql.DB) error {
	stmts, err := b.Schema()
	if err != nil {
		return err
	}
	if err := appdb.Migrate(ctx, appdb.FromSQL(db), stmts); err != nil {
		return fmt.Errorf("participant: migrate barrier: %w", err)
	}
	return nil
}

// TxExecer is the part of an open database transaction the barrier needs.
// Implement it to use Barrier.Enter with a driver other than database/sql
// (see package participant/pgxbarrier).
type TxExecer interface {
	// ExecAffected runs a statement and returns how many rows it affected.
	ExecAffected(ctx context.Context, query string, args ...any) (int64, error)
	// QueryString runs a query that returns exactly one row of one text
	// column and returns that value (an error if there is no row).
	QueryString(ctx context.Context, query string, args ...any) (string, error)
}

// Enter records br in the barrier table inside the caller's open
// transaction tx and reports whether the operation must run:
//
//   - run is true: the caller runs the operation in tx, then commits (or
//     rolls back everything if the operation fails).
//   - run is false, err is nil: a duplicate, or a null compensation; the
//     caller commits tx (it may hold the null-compensation marker) and
//     reports success without running the operation.
//   - err is ErrHanging or any other error: the caller rolls back tx and
//     returns err.
//
// Barrier.Do does all of this for database/sql; Enter is for drivers that
// need their own Do, which must use the Postgres dialect's placeholders if
// the driver is PostgreSQL.
func (b Barrier) Enter(ctx context.Context, tx TxExecer, br Branch) (run bool, err error) {
	if err := br.validate(); err != nil {
		return false, err
	}
	q, err := b.queries()
	if err != nil {
		return false, err
	}
	// Every operation first claims its own row. ON CONFLICT DO NOTHING waits
	// for a concurrent claim of the same row to commit or roll back, so of
	// several concurrent deliveries exactly one gets rowsAffected == 1.
	n, err := tx.ExecAffected(ctx, q.insert, br.GID, br.Index, string(br.Op), string(br.Op))
	if err != nil {
		return false, fmt.Errorf("participant: barrier insert: %w", err)
	}
	if n == 0 {
		origin, err := tx.QueryString(ctx, q.origin, br.GID, br.Index, string(br.Op))
		if err != nil {
			return false, fmt.Errorf("participant: barrier lookup: %w", err)
		}
		if origin == string(br.Op) {
			return false, nil // duplicate delivery: already done
		}
		// The row was written by the compensation of this operation.
		return false, ErrHanging
	}
	paired, compensating := undoes[br.Op]
	if !compensating {
		return true, nil
	}
	// A compensation: bar its paired operation. If we could write that
	// row, the paired operation never ran (and now never will): null
	// compensation. Otherwise it ran (or runs now and we waited for its
	// commit) and we must undo it.
	n, err = tx.ExecAffected(ctx, q.insert, br.GID, br.Index, string(paired), string(br.Op))
	if err != nil {
		return false, fmt.Errorf("participant: barrier insert: %w", err)
	}
	return n == 0, nil
}

// Do runs fn inside one local transaction of db together with the barrier
// row for br, so that fn takes effect at most once per (gid, branch, op):
//
//   - A duplicate delivery of an operation that already committed returns
//     nil without calling fn.
//   - A compensation whose action never ran (a null compensation) records
//     that, and returns nil without calling fn; the action, if it arrives
//     later, gets ErrHanging without calling fn.
//   - "cancel" pairs with "try" as "compensate" pairs with "action"; other
//     operations are plain idempotent operations.
//   - If fn returns an error, everything (barrier rows included) is rolled
//     back and that error is returned unchanged, so a retry runs fn again
//     and a dtx.Permanent error stays permanent.
//
// Concurrent deliveries of the same operation are safe: exactly one runs fn
// and the others wait for it and then return nil (or run fn if it rolled
// back). With SQLite, open the database with BEGIN IMMEDIATE transactions
// and a busy timeout (internal/sqlitedb does).
func (b Barrier) Do(ctx context.Context, db *sql.DB, br Branch, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("participant: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	run, err := b.Enter(ctx, sqlTx{tx}, br)
	if err != nil {
		return err
	}
	if run {
		if err := fn(tx); err != nil {
			return err
		}
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("participant: commit: %w", err)
	}
	return nil
}

// sqlTx adapts *sql.Tx to TxExecer.
type sqlTx struct{ tx *sql.Tx }

func (s sqlTx) ExecAffected(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlTx) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	var v string
	err := s.tx.QueryRowContext(ctx, query, args...).Scan(&v)
	return v, err
}
