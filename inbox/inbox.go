package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
)

// Errors returned by the package.
var (
	// ErrInvalid is returned (wrapped, and marked dtx.Permanent) by
	// Inbox.Handle and Inbox.Claim for an empty group or message id, or one
	// longer than MaxIDLen bytes. Consumer dead-letters such deliveries.
	ErrInvalid = errors.New("inbox: invalid group or message id")
	// ErrNotFound is returned by Consumer.Replay and Consumer.Discard when
	// the group has no dead letter with that message id (it may have been
	// replayed or discarded concurrently).
	ErrNotFound = errors.New("inbox: dead letter not found")
)

// MaxIDLen bounds the length in bytes of a group name and a message id.
const MaxIDLen = 255

// DefaultTable is the inbox table used when Inbox.Table is empty. Dead
// letters live in the table of the same name with suffix "_dead".
const DefaultTable = "dtx_inbox"

// Inbox makes message consumers idempotent: it records each processed
// (group, message id) in a table of the consumer's own database, in the same
// local transaction as the message's effects, so that a redelivered message
// has no effect the second time. The zero value uses SQLite and the table
// dtx_inbox.
//
// Tables (see Schema for each dialect's types):
//
//	<table>       consumer_group, msg_id (primary key), processed_at
//	<table>_dead  dead letters of Consumer: consumer_group, msg_id
//	              (primary key), topic, msg_key, headers, payload, error,
//	              attempts, created_at
//	<table>_attempts  failed deliveries of Consumer so far: consumer_group,
//	              msg_id (primary key), attempts, updated_at
//
// Times are Unix milliseconds from the database's clock.
type Inbox struct {
	// Dialect is the SQL flavour of the database.
	Dialect appdb.Dialect
	// Table is the inbox table (default "dtx_inbox"), optionally
	// schema-qualified ("schema.table"); at most 53 characters for the
	// table part.
	Table string
}

// dialectSQL is every statement of one dialect, with placeholders
// {table}, {name}, {schema.} and {now} (see appdb.Dialect.Expand) and ? parameters.
type dialectSQL struct {
	schema []string
	claim  string // args: group, id
	// claimMany claims several messages in one statement and returns the
	// ids it claimed; args: group, the ids as a JSON array. Empty where
	// the dialect has no INSERT … RETURNING (MySQL): one claim per
	// message there.
	claimMany string
	// addDead records a dead letter; args: group, id, topic, key, headers,
	// payload, error, attempts.
	addDead    string
	listDead   string // args: group
	getDead    string // args: group, id
	deleteDead string // args: group, id
	prune      string // args: age ms
}

var dialects = map[appdb.Dialect]dialectSQL{
	appdb.SQLite: {
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {table} (
	consumer_group TEXT    NOT NULL,
	msg_id         TEXT    NOT NULL,
	processed_at   INTEGER NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
) WITHOUT ROWID`,
			`CREATE INDEX IF NOT EXISTS {schema.}{name}_processed ON {name} (processed_at)`,
			`CREATE TABLE IF NOT EXISTS {table}_dead (
	consumer_group TEXT    NOT NULL,
	msg_id         TEXT    NOT NULL,
	topic          TEXT    NOT NULL,
	msg_key        TEXT    NOT NULL,
	headers        TEXT    NOT NULL,
	payload        BLOB    NOT NULL,
	error          TEXT    NOT NULL,
	attempts       INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
) WITHOUT ROWID`,
		},
		claim: `INSERT INTO {table} (consumer_group, msg_id, processed_at) VALUES (?, ?, {now}) ON CONFLICT DO NOTHING`,
		// WHERE true: without it SQLite would read ON CONFLICT as a join's.
		claimMany: `INSERT INTO {table} (consumer_group, msg_id, processed_at) SELECT ?, value, {now} FROM json_each(?) WHERE true ON CONFLICT DO NOTHING RETURNING msg_id`,
		addDead:   `INSERT INTO {table}_dead (consumer_group, msg_id, topic, msg_key, headers, payload, error, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now}) ON CONFLICT DO NOTHING`,
	},
	appdb.Postgres: {
		schema: []string{
			`SELECT pg_advisory_xact_lock(7418880017520716357)`,
			`CREATE TABLE IF NOT EXISTS {table} (
	consumer_group TEXT   NOT NULL,
	msg_id         TEXT   NOT NULL,
	processed_at   BIGINT NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
)`,
			`CREATE INDEX IF NOT EXISTS {name}_processed ON {table} (processed_at)`,
			`CREATE TABLE IF NOT EXISTS {table}_dead (
	consumer_group TEXT    NOT NULL,
	msg_id         TEXT    NOT NULL,
	topic          TEXT    NOT NULL,
	msg_key        TEXT    NOT NULL,
	headers        JSONB   NOT NULL,
	payload        BYTEA   NOT NULL,
	error          TEXT    NOT NULL,
	attempts       INTEGER NOT NULL,
	created_at     BIGINT  NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
)`,
		},
		claim:     `INSERT INTO {table} (consumer_group, msg_id, processed_at) VALUES (?, ?, {now}) ON CONFLICT DO NOTHING`,
		claimMany: `INSERT INTO {table} (consumer_group, msg_id, processed_at) SELECT ?, value, {now} FROM json_array_elements_text(?::json) ON CONFLICT DO NOTHING RETURNING msg_id`,
		addDead:   `INSERT INTO {table}_dead (consumer_group, msg_id, topic, msg_key, headers, payload, error, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now}) ON CONFLICT DO NOTHING`,
	},
	appdb.MySQL: {
		// VARBINARY keys match byte for byte, whatever the server's
		// character set and collation.
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {table} (
	consumer_group VARBINARY(255) NOT NULL,
	msg_id         VARBINARY(255) NOT NULL,
	processed_at   BIGINT         NOT NULL,
	PRIMARY KEY (consumer_group, msg_id),
	KEY {name}_processed (processed_at)
) ENGINE=InnoDB`,
			`CREATE TABLE IF NOT EXISTS {table}_dead (
	consumer_group VARBINARY(255) NOT NULL,
	msg_id         VARBINARY(255) NOT NULL,
	topic          VARBINARY(255) NOT NULL,
	msg_key        BLOB           NOT NULL,
	headers        LONGBLOB       NOT NULL,
	payload        LONGBLOB       NOT NULL,
	error          BLOB           NOT NULL,
	attempts       INT            NOT NULL,
	created_at     BIGINT         NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
) ENGINE=InnoDB`,
		},
		// On a duplicate key InnoDB takes a shared lock on the existing
		// row, so a concurrent claim of the same message waits for the
		// first to commit (0 rows) or roll back (1 row).
		claim:   `INSERT IGNORE INTO {table} (consumer_group, msg_id, processed_at) VALUES (?, ?, {now})`,
		addDead: `INSERT IGNORE INTO {table}_dead (consumer_group, msg_id, topic, msg_key, headers, payload, error, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now})`,
	},
}

// Statements common to every dialect.
const (
	listDeadSQL = `SELECT msg_id, topic, msg_key, headers, payload, error, attempts, created_at
FROM {table}_dead WHERE consumer_group = ? ORDER BY created_at, msg_id`
	getDeadSQL = `SELECT msg_id, topic, msg_key, headers, payload, error, attempts, created_at
FROM {table}_dead WHERE consumer_group = ? AND msg_id = ?`
	deleteDeadSQL = `DELETE FROM {table}_dead WHERE consumer_group = ? AND msg_id = ?`
	pruneSQL      = `DELETE FROM {table} WHERE processed_at < {now} - ?`
)

// queryCache memoises buildQueries per Inbox value (dialect and table):
// expanding the statements on every delivery cost more CPU than running
// them (measured with dtx bench --pattern events --cpuprofile).
var queryCache sync.Map // Inbox -> dialectSQL

// queries returns the dialect's statements with the names filled in. The
// result is shared: callers must not modify its slices.
func (in Inbox) queries() (dialectSQL, error) {
	if q, ok := queryCache.Load(in); ok {
		return q.(dialectSQL), nil
	}
	q, err := in.buildQueries()
	if err != nil {
		return dialectSQL{}, err
	}
	queryCache.Store(in, q)
	return q, nil
}

// buildQueries expands the dialect's statements for in's table.
func (in Inbox) buildQueries() (dialectSQL, error) {
	q, ok := dialects[in.Dialect]
	if !ok {
		return dialectSQL{}, fmt.Errorf("inbox: unsupported dialect %v", in.Dialect)
	}
	name := in.Table
	if name == "" {
		name = DefaultTable
	}
	t, err := appdb.ParseTable(name, len("_processed"))
	if err != nil {
		return dialectSQL{}, fmt.Errorf("inbox: %w", err)
	}
	x := func(s string) string { return in.Dialect.Rebind(in.Dialect.Expand(t, s)) }
	out := dialectSQL{
		claim:      x(q.claim),
		claimMany:  x(q.claimMany),
		addDead:    x(q.addDead),
		listDead:   x(listDeadSQL),
		getDead:    x(getDeadSQL),
		deleteDead: x(deleteDeadSQL),
		prune:      x(pruneSQL),
	}
	for _, s := range q.schema {
		out.schema = append(out.schema, in.Dialect.Expand(t, s))
	}
	out.schema = append(out.schema, in.Dialect.Expand(t, attemptsSchema[in.Dialect]))
	return out, nil
}

// Schema returns the statements that create the inbox and dead-letter
// tables if they do not exist, to be run in order in one transaction.
// Migrate runs them.
func (in Inbox) Schema() ([]string, error) {
	q, err := in.queries()
	if err != nil {
		return nil, err
	}
	return slices.Clone(q.schema), nil
}

// Migrate creates the inbox and dead-letter tables if they do not exist.
// It is safe to call on every start, concurrently from several processes.
func (in Inbox) Migrate(ctx context.Context, db *sql.DB) error {
	stmts, err := in.Schema()
	if err != nil {
		return err
	}
	if err := appdb.Migrate(ctx, appdb.FromSQL(db), stmts); err != nil {
		return fmt.Errorf("inbox: migrate: %w", err)
	}
	return nil
}

func checkIDs(group, id string) error {
	switch {
	case group == "" || id == "":
		return dtx.Permanent(fmt.Errorf("%w: group %q, message id %q", ErrInvalid, group, id))
	case len(group) > MaxIDLen || len(id) > MaxIDLen:
		return dtx.Permanent(fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxIDLen))
	}
	return nil
}

// Claim records message id as processed by group inside the caller's open
// transaction tx and reports whether this is its first processing:
//
//   - first is true: the caller applies the message's effects in tx and
//     commits (or rolls everything back, the claim included, on failure).
//   - first is false: the message was processed already; the caller
//     applies nothing.
//
// A concurrent claim of the same message waits until the first
// transaction commits (then first is false) or rolls back (then true).
// Handle does all of this; Claim is for callers that manage their own
// transaction. It returns an error wrapping ErrInvalid (permanent) for an
// empty or over-long group or id.
func (in Inbox) Claim(ctx context.Context, tx *sql.Tx, group, id string) (first bool, err error) {
	if err := checkIDs(group, id); err != nil {
		return false, err
	}
	q, err := in.queries()
	if err != nil {
		return false, err
	}
	res, err := tx.ExecContext(ctx, q.claim, group, id)
	if err != nil {
		return false, fmt.Errorf("inbox: claim %s/%s: %w", group, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("inbox: claim %s/%s: %w", group, id, err)
	}
	return n == 1, nil
}

// Handle processes delivery d for consumer group at most once: in one
// local transaction of db it records (group, d.ID) and runs fn, whose
// writes must go through tx.
//
//   - A duplicate delivery (already processed by group) commits nothing,
//     does not call fn, and returns nil.
//   - If fn returns an error (or panics) everything is rolled back, the
//     record included, and the error is returned unchanged, so that a
//     redelivery runs fn again and a dtx.Permanent error stays permanent.
//
// Concurrent deliveries of the same message are safe: one runs fn, the
// others wait for its transaction and then return nil (or run fn, if it
// rolled back). With MySQL a waiter may instead get a deadlock error after a
// rollback, a transient error the broker redelivers. With SQLite, open the
// database with BEGIN IMMEDIATE transactions and a busy timeout
// (internal/sqlitedb does).
func (in Inbox) Handle(ctx context.Context, db *sql.DB, d broker.Delivery, group string, fn func(tx *sql.Tx) error) error {
	if err := checkIDs(group, d.ID); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	first, err := in.Claim(ctx, tx, group, d.ID)
	if err != nil || !first {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: commit %s/%s: %w", group, d.ID, err)
	}
	return nil
}

// Prune deletes the records of messages processed more than age ago, to
// bound the inbox table. A duplicate delivered after its record was pruned
// is processed again, so age must exceed the longest time the broker may
// redeliver a message (its retention, for a consumer group replaying from
// the start). Dead letters are not touched. Prune is one statement; Purge
// deletes in bounded batches and refuses an unsafe age.
func (in Inbox) Prune(ctx context.Context, db *sql.DB, age time.Duration) (int64, error) {
	q, err := in.queries()
	if err != nil {
		return 0, err
	}
	var opts *sql.TxOptions
	if in.Dialect == appdb.MySQL {
		// Under REPEATABLE READ the range delete would take gap locks that
		// make concurrent claims wait.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, q.prune, age.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	return n, nil
}
