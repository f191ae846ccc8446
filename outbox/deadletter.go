package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
)

// Giving up (RelayConfig.MaxAttempts): the relay counts the failed
// publishes of each row in <table>_attempts (seq, attempts, last error),
// and once a row reaches MaxAttempts it moves the row, in one transaction,
// from the outbox into <table>_dead, where it is FAILED with its last
// error until an operator replays (Outbox.Replay) or discards
// (Outbox.Discard) it. Both tables are created by Migrate.

// ErrNotFound is returned (wrapped) by Outbox.Replay and Outbox.Discard
// when there is no dead letter with that seq (it may have been replayed
// or discarded concurrently).
var ErrNotFound = errors.New("outbox: dead letter not found")

// maxErrorLen bounds the error text kept with a failing row.
const maxErrorLen = 1000

// DeadLetter is an outbox message the relay gave up on: FAILED.
type DeadLetter struct {
	// Seq is the message's outbox sequence number when it failed; it names
	// the dead letter.
	Seq int64
	// Message is the message as added.
	Message broker.Message
	// Error is the last publish error (truncated to 1000 bytes).
	Error string
	// Attempts is the number of failed publishes.
	Attempts int
	// Created is when the message was added, Failed when it was given up
	// (database clock).
	Created, Failed time.Time
}

// deadSchema creates the attempts and dead-letter tables; appended to
// each dialect's schema by Outbox.queries.
var deadSchema = map[appdb.Dialect][]string{
	appdb.SQLite: {
		`CREATE TABLE IF NOT EXISTS {table}_attempts (
	seq        INTEGER PRIMARY KEY,
	attempts   INTEGER NOT NULL,
	last_error TEXT    NOT NULL,
	updated_at INTEGER NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS {table}_dead (
	seq        INTEGER PRIMARY KEY,
	msg_id     TEXT    NOT NULL,
	topic      TEXT    NOT NULL,
	msg_key    TEXT    NOT NULL,
	headers    TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	attempts   INTEGER NOT NULL,
	error      TEXT    NOT NULL,
	failed_at  INTEGER NOT NULL
)`,
	},
	appdb.Postgres: {
		`CREATE TABLE IF NOT EXISTS {table}_attempts (
	seq        BIGINT  PRIMARY KEY,
	attempts   INTEGER NOT NULL,
	last_error TEXT    NOT NULL,
	updated_at BIGINT  NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS {table}_dead (
	seq        BIGINT  PRIMARY KEY,
	msg_id     TEXT    NOT NULL,
	topic      TEXT    NOT NULL,
	msg_key    TEXT    NOT NULL,
	headers    JSONB   NOT NULL,
	payload    BYTEA   NOT NULL,
	created_at BIGINT  NOT NULL,
	attempts   INTEGER NOT NULL,
	error      TEXT    NOT NULL,
	failed_at  BIGINT  NOT NULL
)`,
	},
	appdb.MySQL: {
		`CREATE TABLE IF NOT EXISTS {table}_attempts (
	seq        BIGINT NOT NULL PRIMARY KEY,
	attempts   INT    NOT NULL,
	last_error BLOB   NOT NULL,
	updated_at BIGINT NOT NULL
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS {table}_dead (
	seq        BIGINT         NOT NULL PRIMARY KEY,
	msg_id     VARBINARY(255) NOT NULL,
	topic      VARBINARY(255) NOT NULL,
	msg_key    BLOB           NOT NULL,
	headers    LONGBLOB       NOT NULL,
	payload    LONGBLOB       NOT NULL,
	created_at BIGINT         NOT NULL,
	attempts   INT            NOT NULL,
	error      BLOB           NOT NULL,
	failed_at  BIGINT         NOT NULL
) ENGINE=InnoDB`,
	},
}

// countFailureSQL adds one failed publish of a row; args: seq, error.
var countFailureSQL = map[appdb.Dialect]string{
	appdb.SQLite: `INSERT INTO {table}_attempts (seq, attempts, last_error, updated_at) VALUES (?, 1, ?, {now})
ON CONFLICT (seq) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error, updated_at = excluded.updated_at`,
	appdb.Postgres: `INSERT INTO {table}_attempts AS a (seq, attempts, last_error, updated_at) VALUES (?, 1, ?, {now})
ON CONFLICT (seq) DO UPDATE SET attempts = a.attempts + 1, last_error = excluded.last_error, updated_at = excluded.updated_at`,
	appdb.MySQL: `INSERT INTO {table}_attempts (seq, attempts, last_error, updated_at) VALUES (?, 1, ?, {now})
ON DUPLICATE KEY UPDATE attempts = attempts + 1, last_error = VALUES(last_error), updated_at = VALUES(updated_at)`,
}

const (
	readAttemptsSQL = `SELECT attempts FROM {table}_attempts WHERE seq = ?`
	// moveDeadSQL copies a row into the dead letters; args: attempts,
	// error, seq.
	moveDeadSQL = `INSERT INTO {table}_dead (seq, msg_id, topic, msg_key, headers, payload, created_at, attempts, error, failed_at)
SELECT seq, msg_id, topic, msg_key, headers, payload, created_at, ?, ?, {now} FROM {table} WHERE seq = ?`
	deleteRowSQL      = `DELETE FROM {table} WHERE seq = ?`
	deleteAttemptsSQL = `DELETE FROM {table}_attempts WHERE seq = ?`
	deadColumns       = `seq, msg_id, topic, msg_key, headers, payload, created_at, attempts, error, failed_at`
	listDeadSQL       = `SELECT ` + deadColumns + ` FROM {table}_dead ORDER BY seq`
	getDeadSQL        = `SELECT ` + deadColumns + ` FROM {table}_dead WHERE seq = ?`
	deleteDeadSQL     = `DELETE FROM {table}_dead WHERE seq = ?`
)

// deadSQL is the statements of the attempts and dead-letter tables, names
// filled in.
type deadSQL struct {
	count, read, move, deleteRow, deleteAttempts, list, get, deleteDead string
}

// deadQueries returns the statements of the attempts and dead-letter
// tables.
func (o Outbox) deadQueries() (deadSQL, error) {
	if _, err := o.queries(); err != nil {
		return deadSQL{}, err
	}
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	t, _ := appdb.ParseTable(name, len("_unpublished")) // checked by queries
	x := func(s string) string { return o.Dialect.Rebind(o.Dialect.Expand(t, s)) }
	move := moveDeadSQL
	if o.Dialect == appdb.Postgres {
		// Parameters in a SELECT list have no type to infer from.
		move = strings.Replace(move, "?, ?, {now}", "CAST(? AS INTEGER), CAST(? AS TEXT), {now}", 1)
	}
	return deadSQL{
		count:          x(countFailureSQL[o.Dialect]),
		read:           x(readAttemptsSQL),
		move:           x(move),
		deleteRow:      x(deleteRowSQL),
		deleteAttempts: x(deleteAttemptsSQL),
		list:           x(listDeadSQL),
		get:            x(getDeadSQL),
		deleteDead:     x(deleteDeadSQL),
	}, nil
}

// countFailure records one more failed publish of row seq with its error
// and returns the failures so far.
func (o Outbox) countFailure(ctx context.Context, db *sql.DB, seq int64, cause error) (int, error) {
	q, err := o.deadQueries()
	if err != nil {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("outbox: count failure of row %d: %w", seq, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, q.count, seq, truncate(cause.Error(), maxErrorLen)); err != nil {
		return 0, fmt.Errorf("outbox: count failure of row %d: %w", seq, err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, q.read, seq).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count failure of row %d: %w", seq, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox: count failure of row %d: %w", seq, err)
	}
	return n, nil
}

// clearFailures deletes the failure counts of the published rows seqs.
func (r *Relay) clearFailures(ctx context.Context, seqs []any) error {
	stmt := r.ob.Dialect.Rebind(r.q.clearAttempts + appdb.List(len(seqs)) + ")")
	if _, err := r.db.ExecContext(ctx, stmt, seqs...); err != nil {
		return fmt.Errorf("outbox: clear failure counts: %w", err)
	}
	return nil
}

// giveUp moves row seq from the outbox into the dead letters, FAILED with
// cause after attempts failed publishes.
func (o Outbox) giveUp(ctx context.Context, db *sql.DB, seq int64, attempts int, cause error) error {
	q, err := o.deadQueries()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: give up row %d: %w", seq, err)
	}
	defer tx.Rollback()
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{q.move, []any{attempts, truncate(cause.Error(), maxErrorLen), seq}},
		{q.deleteRow, []any{seq}},
		{q.deleteAttempts, []any{seq}},
	} {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("outbox: give up row %d: %w", seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: give up row %d: %w", seq, err)
	}
	return nil
}

// scanDead reads one dead-letter row.
func scanDead(sc interface{ Scan(...any) error }) (DeadLetter, error) {
	var (
		dl              DeadLetter
		headers         []byte
		created, failed int64
	)
	if err := sc.Scan(&dl.Seq, &dl.Message.ID, &dl.Message.Topic, &dl.Message.Key, &headers, &dl.Message.Payload,
		&created, &dl.Attempts, &dl.Error, &failed); err != nil {
		return DeadLetter{}, err
	}
	if len(dl.Message.Payload) == 0 {
		dl.Message.Payload = nil
	}
	if len(headers) > 0 && string(headers) != "{}" {
		if err := json.Unmarshal(headers, &dl.Message.Headers); err != nil {
			return DeadLetter{}, fmt.Errorf("outbox: decode headers of dead letter %d: %w", dl.Seq, err)
		}
	}
	dl.Created, dl.Failed = time.UnixMilli(created), time.UnixMilli(failed)
	return dl, nil
}

// DeadLetters returns the messages the relay gave up on (FAILED), oldest
// first.
func (o Outbox) DeadLetters(ctx context.Context, db *sql.DB) ([]DeadLetter, error) {
	q, err := o.deadQueries()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, q.list)
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		dl, err := scanDead(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: list dead letters: %w", err)
		}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: list dead letters: %w", err)
	}
	return out, nil
}

// Replay puts the dead letter seq back into the outbox, as a new row at
// the end (a new seq) with its attempts starting again from zero, in one
// transaction that also removes the dead letter; call Relay.Notify after
// it to publish at once. An unknown seq (or one replayed or discarded
// meanwhile) gives ErrNotFound.
func (o Outbox) Replay(ctx context.Context, db *sql.DB, seq int64) error {
	return o.removeDead(ctx, db, seq, true)
}

// Discard deletes the dead letter seq: the message is never published. An
// unknown seq gives ErrNotFound.
func (o Outbox) Discard(ctx context.Context, db *sql.DB, seq int64) error {
	return o.removeDead(ctx, db, seq, false)
}

func (o Outbox) removeDead(ctx context.Context, db *sql.DB, seq int64, replay bool) error {
	q, err := o.deadQueries()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback()
	dl, err := scanDead(tx.QueryRowContext(ctx, q.get, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	if err != nil {
		return fmt.Errorf("outbox: read dead letter %d: %w", seq, err)
	}
	// Deleting first claims the dead letter: a concurrent Replay or
	// Discard waits on the row and then finds it gone.
	res, err := tx.ExecContext(ctx, q.deleteDead, seq)
	if err != nil {
		return fmt.Errorf("outbox: delete dead letter %d: %w", seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("outbox: delete dead letter %d: %w", seq, err)
	} else if n != 1 {
		return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	if replay {
		if err := o.Add(ctx, tx, dl.Message); err != nil {
			return fmt.Errorf("outbox: replay %d: %w", seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: commit: %w", err)
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clearAttemptsSQL is the head of the statement that deletes the failure
// counts of published rows; an IN list of seqs and ")" follow.
const clearAttemptsSQL = `DELETE FROM {table}_attempts WHERE seq IN (`
