package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
)

// Errors returned by the package.
var (
	// ErrInvalidMessage is returned (wrapped) by Outbox.Add for a message
	// without ID or Topic, or with an ID or Topic longer than MaxIDLen
	// bytes. Nothing of the call is written.
	ErrInvalidMessage = errors.New("outbox: invalid message")
	// ErrRunning is returned by Relay.Run while the same Relay is already
	// running.
	ErrRunning = errors.New("outbox: relay already running")
)

// MaxIDLen bounds the length in bytes of Message.ID and Message.Topic, so
// that they fit the indexed columns of every dialect (and of the inbox).
const MaxIDLen = 255

// DefaultTable is the outbox table used when Outbox.Table is empty. The
// relay's lease lives in the table of the same name with suffix "_lease".
const DefaultTable = "dtx_outbox"

// Outbox writes messages into a table of the application's own database, in
// the caller's local transaction, so that a message exists if and only if
// the business change that produced it committed. A Relay then publishes
// the rows. The zero value uses SQLite and the table dtx_outbox.
//
// Table layout (see Schema for the exact types of each dialect):
//
//	seq           monotonically increasing, the publishing order
//	msg_id        broker.Message.ID
//	topic         broker.Message.Topic
//	msg_key       broker.Message.Key ('' for none)
//	headers       broker.Message.Headers as a JSON object
//	payload       broker.Message.Payload
//	created_at    Unix milliseconds, database clock, at Add
//	published_at  Unix milliseconds, database clock; NULL until published
//
// The companion table <table>_lease holds one row (owner, expires_at) that
// makes at most one Relay publish at a time; <table>_attempts counts the
// failed publishes of rows and <table>_dead keeps the rows a relay gave up
// on (see RelayConfig.MaxAttempts and DeadLetters).
type Outbox struct {
	// Dialect is the SQL flavour of the database.
	Dialect appdb.Dialect
	// Table is the outbox table (default "dtx_outbox"), optionally
	// schema-qualified ("schema.table"); at most 57 characters for the
	// table part.
	Table string
	// TracerProvider records a producer span ("dtx.outbox <topic>") per
	// message Add writes, under the span of Add's context, and the message
	// carries that span's context in its traceparent header, so that its
	// consumers (package inbox) continue the trace. Default
	// otel.GetTracerProvider(), a no-op until the application installs one.
	TracerProvider trace.TracerProvider
	// NotifyOnCommit, on PostgreSQL, makes Add also send a notification on
	// NotifyChannel in the caller's transaction; PostgreSQL delivers it at
	// commit, so the relays of the table in every process (they LISTEN)
	// publish the rows at once. Without it, relays in this process are
	// woken anyway (see Notify) and those elsewhere find the rows at their
	// next poll. It costs a statement per Add, and PostgreSQL serialises
	// the commits of notifying transactions, which caps their rate at
	// about one commit per WAL flush: leave it off where the relay runs in
	// the writing process.
	NotifyOnCommit bool
}

// dialectSQL is every statement of one dialect, with placeholders
// {table}, {name}, {schema.} and {now} (see appdb.Dialect.Expand) and ? parameters.
type dialectSQL struct {
	schema []string
	insert string // see insertSQL
	// fetch returns the oldest unpublished rows in seq order and the
	// database clock; args: limit.
	fetch string
	// claim takes or renews the lease; args: owner, ttl ms, owner.
	claim string
	// release gives the lease up; args: owner.
	release string
	// markPublished / deletePublished end with an IN list of seqs.
	markPublished   string
	deletePublished string
	// clearAttempts ends with an IN list of seqs (deadletter.go).
	clearAttempts string
}

var dialects = map[appdb.Dialect]dialectSQL{
	appdb.SQLite: {
		schema: []string{
			// AUTOINCREMENT: seq never goes back, even when every row has
			// been deleted (a plain rowid would restart at max+1).
			`CREATE TABLE IF NOT EXISTS {table} (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	msg_id       TEXT    NOT NULL,
	topic        TEXT    NOT NULL,
	msg_key      TEXT    NOT NULL DEFAULT '',
	headers      TEXT    NOT NULL DEFAULT '{}',
	payload      BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	published_at INTEGER
)`,
			`CREATE INDEX IF NOT EXISTS {schema.}{name}_unpublished ON {name} (seq) WHERE published_at IS NULL`,
			`CREATE INDEX IF NOT EXISTS {schema.}{name}_published ON {name} (published_at) WHERE published_at IS NOT NULL`,
			`CREATE TABLE IF NOT EXISTS {table}_lease (
	id         INTEGER PRIMARY KEY,
	owner      TEXT    NOT NULL,
	expires_at INTEGER NOT NULL,
	version    INTEGER NOT NULL
)`,
			`INSERT INTO {table}_lease (id, owner, expires_at, version) VALUES (1, '', 0, 0) ON CONFLICT DO NOTHING`,
		},
	},
	appdb.Postgres: {
		schema: []string{
			// Serialise concurrent migrations: CREATE ... IF NOT EXISTS can
			// still fail on a race in the catalog.
			`SELECT pg_advisory_xact_lock(7418880017520716356)`,
			`CREATE TABLE IF NOT EXISTS {table} (
	seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	msg_id       TEXT   NOT NULL,
	topic        TEXT   NOT NULL,
	msg_key      TEXT   NOT NULL DEFAULT '',
	headers      JSONB  NOT NULL DEFAULT '{}',
	payload      BYTEA  NOT NULL,
	created_at   BIGINT NOT NULL,
	published_at BIGINT
)`,
			`CREATE INDEX IF NOT EXISTS {name}_unpublished ON {table} (seq) WHERE published_at IS NULL`,
			`CREATE INDEX IF NOT EXISTS {name}_published ON {table} (published_at) WHERE published_at IS NOT NULL`,
			`CREATE TABLE IF NOT EXISTS {table}_lease (
	id         INTEGER PRIMARY KEY,
	owner      TEXT    NOT NULL,
	expires_at BIGINT  NOT NULL,
	version    BIGINT  NOT NULL
)`,
			`INSERT INTO {table}_lease (id, owner, expires_at, version) VALUES (1, '', 0, 0) ON CONFLICT DO NOTHING`,
		},
	},
	appdb.MySQL: {
		// Byte strings throughout: no dependency on the server's default
		// character set. (published_at, seq) serves both the relay's scan
		// (published_at IS NULL ORDER BY seq) and the retention purge.
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {table} (
	seq          BIGINT         NOT NULL AUTO_INCREMENT PRIMARY KEY,
	msg_id       VARBINARY(255) NOT NULL,
	topic        VARBINARY(255) NOT NULL,
	msg_key      BLOB           NOT NULL,
	headers      LONGBLOB       NOT NULL,
	payload      LONGBLOB       NOT NULL,
	created_at   BIGINT         NOT NULL,
	published_at BIGINT         NULL,
	KEY {name}_unpublished (published_at, seq)
) ENGINE=InnoDB`,
			`CREATE TABLE IF NOT EXISTS {table}_lease (
	id         INT            NOT NULL PRIMARY KEY,
	owner      VARBINARY(255) NOT NULL,
	expires_at BIGINT         NOT NULL,
	version    BIGINT         NOT NULL
) ENGINE=InnoDB`,
			`INSERT IGNORE INTO {table}_lease (id, owner, expires_at, version) VALUES (1, '', 0, 0)`,
		},
	},
}

// Statements common to every dialect.
const (
	// insertSQL is the head of the multi-row insert; the VALUES groups are
	// (msg_id, topic, msg_key, headers, payload, {now}).
	insertSQL = `INSERT INTO {table} (msg_id, topic, msg_key, headers, payload, created_at) VALUES `
	fetchSQL  = `SELECT seq, msg_id, topic, msg_key, headers, payload, created_at, {now}
FROM {table} WHERE published_at IS NULL ORDER BY seq LIMIT ?`
	// The version bump makes the row change on every renewal, so MySQL
	// reports one affected row even without clientFoundRows.
	claimSQL = `UPDATE {table}_lease SET owner = ?, expires_at = {now} + ?, version = version + 1
WHERE id = 1 AND (owner = ? OR expires_at <= {now})`
	releaseSQL         = `UPDATE {table}_lease SET owner = '', expires_at = 0, version = version + 1 WHERE id = 1 AND owner = ?`
	markPublishedSQL   = `UPDATE {table} SET published_at = {now} WHERE seq IN (`
	deletePublishedSQL = `DELETE FROM {table} WHERE seq IN (`
)

// queryKey is what an Outbox's statements depend on.
type queryKey struct {
	dialect appdb.Dialect
	table   string
}

// queryCache memoises buildQueries: expanding the statements on every Add
// cost more CPU than running them (measured with dtx bench --pattern
// events --cpuprofile).
var queryCache sync.Map // queryKey -> dialectSQL

// queries returns the dialect's statements with the names filled in. The
// result is shared: callers must not modify its slices.
func (o Outbox) queries() (dialectSQL, error) {
	k := queryKey{o.Dialect, o.Table}
	if q, ok := queryCache.Load(k); ok {
		return q.(dialectSQL), nil
	}
	q, err := o.buildQueries()
	if err != nil {
		return dialectSQL{}, err
	}
	queryCache.Store(k, q)
	return q, nil
}

// buildQueries expands the dialect's statements for o's table.
func (o Outbox) buildQueries() (dialectSQL, error) {
	q, ok := dialects[o.Dialect]
	if !ok {
		return dialectSQL{}, fmt.Errorf("outbox: unsupported dialect %v", o.Dialect)
	}
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	t, err := appdb.ParseTable(name, len("_unpublished"))
	if err != nil {
		return dialectSQL{}, fmt.Errorf("outbox: %w", err)
	}
	x := func(s string) string { return o.Dialect.Rebind(o.Dialect.Expand(t, s)) }
	out := dialectSQL{
		insert:          o.Dialect.Expand(t, insertSQL),
		fetch:           x(fetchSQL),
		claim:           x(claimSQL),
		release:         x(releaseSQL),
		markPublished:   o.Dialect.Expand(t, markPublishedSQL),
		deletePublished: o.Dialect.Expand(t, deletePublishedSQL),
		clearAttempts:   o.Dialect.Expand(t, clearAttemptsSQL),
	}
	for _, s := range q.schema {
		out.schema = append(out.schema, o.Dialect.Expand(t, s))
	}
	for _, s := range deadSchema[o.Dialect] {
		out.schema = append(out.schema, o.Dialect.Expand(t, s))
	}
	return out, nil
}

// Schema returns the statements that create the outbox and lease tables
// (and indexes) if they do not exist, to be run in order in one
// transaction. Migrate runs them.
func (o Outbox) Schema() ([]string, error) {
	q, err := o.queries()
	if err != nil {
		return nil, err
	}
	return slices.Clone(q.schema), nil
}

// Migrate creates the outbox and lease tables if they do not exist. It is
// safe to call on every start, concurrently from several processes.
func (o Outbox) Migrate(ctx context.Context, db *sql.DB) error {
	stmts, err := o.Schema()
	if err != nil {
		return err
	}
	if err := appdb.Migrate(ctx, appdb.FromSQL(db), stmts); err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	return nil
}

// insertChunk bounds the rows of one INSERT statement (6 parameters each;
// well under every driver's parameter limit).
const insertChunk = 100

// Add inserts msgs into the outbox inside the caller's open transaction tx,
// in the order given, so that they are published if and only if tx
// commits. Call it in the same transaction as the business change the
// messages announce, then commit tx (and, optionally, call Relay.Notify to
// have them published at once).
//
// Messages with the same Topic and Key are published in the order they
// were added; for two transactions writing the same key, that is their
// commit order as long as they serialise on the business rows they change
// before calling Add (as updating the same aggregate does).
//
// Add returns an error wrapping ErrInvalidMessage, before writing anything,
// if a message lacks ID or Topic or has one longer than MaxIDLen bytes.
// Any other error comes from the database; the caller should roll tx back.
// Add does not retain msgs.
func (o Outbox) Add(ctx context.Context, tx *sql.Tx, msgs ...broker.Message) error {
	q, err := o.queries()
	if err != nil {
		return err
	}
	args := make([]any, 0, 6*min(len(msgs), insertChunk))
	for i, m := range msgs {
		if err := validate(m); err != nil {
			return fmt.Errorf("outbox: add message %d: %w", i, err)
		}
	}
	msgs = o.traced(ctx, msgs)
	for len(msgs) > 0 {
		n := min(len(msgs), insertChunk)
		args = args[:0]
		for _, m := range msgs[:n] {
			headers := []byte("{}")
			if len(m.Headers) > 0 {
				if headers, err = json.Marshal(m.Headers); err != nil {
					return fmt.Errorf("outbox: encode headers of %s: %w", m.ID, err)
				}
			}
			payload := m.Payload
			if payload == nil {
				payload = []byte{} // NOT NULL
			}
			args = append(args, m.ID, m.Topic, m.Key, string(headers), payload)
		}
		stmt := q.insert + appdb.Placeholders(n, 5, o.Dialect.NowMillis())
		if _, err := tx.ExecContext(ctx, o.Dialect.Rebind(stmt), args...); err != nil {
			return fmt.Errorf("outbox: insert messages: %w", err)
		}
		msgs = msgs[n:]
	}
	if o.NotifyOnCommit && o.Dialect == appdb.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, o.NotifyChannel()); err != nil {
			return fmt.Errorf("outbox: notify: %w", err)
		}
	}
	o.Notify() // see Notify: the relays look until the commit shows
	return nil
}

func validate(m broker.Message) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalidMessage)
	case m.Topic == "":
		return fmt.Errorf("%w: %s: empty Topic", ErrInvalidMessage, m.ID)
	case len(m.ID) > MaxIDLen:
		return fmt.Errorf("%w: ID longer than %d bytes", ErrInvalidMessage, MaxIDLen)
	case len(m.Topic) > MaxIDLen:
		return fmt.Errorf("%w: %s: Topic longer than %d bytes", ErrInvalidMessage, m.ID, MaxIDLen)
	}
	return nil
}
