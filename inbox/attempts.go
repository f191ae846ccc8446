package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/dtxhq/dtx/appdb"
)

// Failed deliveries are counted per (group, message id) in the table
// <table>_attempts of the consumer's database, so that the attempt at which
// Consumer dead-letters a message does not restart at 1 when the consumer
// restarts (a Kafka consumer numbers attempts in memory only). A failure is
// counted in a short transaction of its own (the failed attempt's
// transaction rolled back); the count is deleted in the transaction that
// processes the message or records its dead letter.

// attemptsSchema creates the attempts table; appended to each dialect's
// schema by Inbox.queries.
var attemptsSchema = map[appdb.Dialect]string{
	appdb.SQLite: `CREATE TABLE IF NOT EXISTS {table}_attempts (
	consumer_group TEXT    NOT NULL,
	msg_id         TEXT    NOT NULL,
	attempts       INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
) WITHOUT ROWID`,
	appdb.Postgres: `CREATE TABLE IF NOT EXISTS {table}_attempts (
	consumer_group TEXT    NOT NULL,
	msg_id         TEXT    NOT NULL,
	attempts       INTEGER NOT NULL,
	updated_at     BIGINT  NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
)`,
	appdb.MySQL: `CREATE TABLE IF NOT EXISTS {table}_attempts (
	consumer_group VARBINARY(255) NOT NULL,
	msg_id         VARBINARY(255) NOT NULL,
	attempts       INT            NOT NULL,
	updated_at     BIGINT         NOT NULL,
	PRIMARY KEY (consumer_group, msg_id)
) ENGINE=InnoDB`,
}

// countFailureSQL adds one failed attempt; args: group, id.
var countFailureSQL = map[appdb.Dialect]string{
	appdb.SQLite: `INSERT INTO {table}_attempts (consumer_group, msg_id, attempts, updated_at) VALUES (?, ?, 1, {now})
ON CONFLICT (consumer_group, msg_id) DO UPDATE SET attempts = attempts + 1, updated_at = excluded.updated_at`,
	appdb.Postgres: `INSERT INTO {table}_attempts AS a (consumer_group, msg_id, attempts, updated_at) VALUES (?, ?, 1, {now})
ON CONFLICT (consumer_group, msg_id) DO UPDATE SET attempts = a.attempts + 1, updated_at = excluded.updated_at`,
	appdb.MySQL: `INSERT INTO {table}_attempts (consumer_group, msg_id, attempts, updated_at) VALUES (?, ?, 1, {now})
ON DUPLICATE KEY UPDATE attempts = attempts + 1, updated_at = VALUES(updated_at)`,
}

const (
	readAttemptsSQL  = `SELECT attempts FROM {table}_attempts WHERE consumer_group = ? AND msg_id = ?`
	clearAttemptsSQL = `DELETE FROM {table}_attempts WHERE consumer_group = ? AND msg_id = ?`
)

// clearManySQL deletes the failure counts of several messages in one
// statement; args: group, the ids as a JSON array. Dialects with a
// claimMany only.
var clearManySQL = map[appdb.Dialect]string{
	appdb.SQLite:   `DELETE FROM {table}_attempts WHERE consumer_group = ? AND msg_id IN (SELECT value FROM json_each(?))`,
	appdb.Postgres: `DELETE FROM {table}_attempts WHERE consumer_group = ? AND msg_id IN (SELECT json_array_elements_text(?::json))`,
}

// attemptSQL is the attempts table's statements, names filled in.
type attemptSQL struct {
	count, read, clear string
	clearMany          string // "" where the dialect has none
}

// attemptCache memoises buildAttemptQueries per Inbox value.
var attemptCache sync.Map // Inbox -> attemptSQL

// attemptQueries returns the statements of the attempts table.
func (in Inbox) attemptQueries() (attemptSQL, error) {
	if q, ok := attemptCache.Load(in); ok {
		return q.(attemptSQL), nil
	}
	q, err := in.buildAttemptQueries()
	if err != nil {
		return attemptSQL{}, err
	}
	attemptCache.Store(in, q)
	return q, nil
}

func (in Inbox) buildAttemptQueries() (attemptSQL, error) {
	if _, err := in.queries(); err != nil {
		return attemptSQL{}, err
	}
	name := in.Table
	if name == "" {
		name = DefaultTable
	}
	t, _ := appdb.ParseTable(name, len("_processed")) // checked by queries
	x := func(s string) string { return in.Dialect.Rebind(in.Dialect.Expand(t, s)) }
	return attemptSQL{
		count: x(countFailureSQL[in.Dialect]),
		read:  x(readAttemptsSQL),
		clear: x(clearAttemptsSQL),
		// x("") is "": no statement.
		clearMany: x(clearManySQL[in.Dialect]),
	}, nil
}

// CountFailure records one more failed delivery of message id to group, in
// a short transaction of its own, and returns the failures counted so far
// (1 for the first), including those before a restart. Consumer calls it
// for each failed delivery; the count is cleared when the message is
// processed or dead-lettered.
func (in Inbox) CountFailure(ctx context.Context, db *sql.DB, group, id string) (int, error) {
	if err := checkIDs(group, id); err != nil {
		return 0, err
	}
	q, err := in.attemptQueries()
	if err != nil {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("inbox: count failure of %s/%s: %w", group, id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, q.count, group, id); err != nil {
		return 0, fmt.Errorf("inbox: count failure of %s/%s: %w", group, id, err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, q.read, group, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("inbox: count failure of %s/%s: %w", group, id, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("inbox: count failure of %s/%s: %w", group, id, err)
	}
	return n, nil
}

// Failures returns the failed deliveries of message id to group counted so
// far (0 if none, or once the message was processed or dead-lettered).
func (in Inbox) Failures(ctx context.Context, db *sql.DB, group, id string) (int, error) {
	q, err := in.attemptQueries()
	if err != nil {
		return 0, err
	}
	var n int
	err = db.QueryRowContext(ctx, q.read, group, id).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inbox: read failures of %s/%s: %w", group, id, err)
	}
	return n, nil
}

// clearFailures deletes the failure count of message id in tx.
func (in Inbox) clearFailures(ctx context.Context, tx *sql.Tx, group, id string) error {
	q, err := in.attemptQueries()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q.clear, group, id); err != nil {
		return fmt.Errorf("inbox: clear failures of %s/%s: %w", group, id, err)
	}
	return nil
}
