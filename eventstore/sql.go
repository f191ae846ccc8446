package eventstore

import (
	"fmt"

	"github.com/dtxhq/dtx/appdb"
)

// DefaultTable is the event table used when Config.Table is empty. The
// store keeps three companion tables of the same name with the suffixes
// "_streams" (each stream's current version), "_head" (one row: the last
// global position, the append lock) and "_snapshots".
const DefaultTable = "dtx_events"

// dialectSQL holds the statements that differ between dialects, with the
// placeholders of appdb.Dialect.Expand and ? parameters.
type dialectSQL struct {
	schema []string
	// forUpdate ends a SELECT that must lock the rows it reads (and read the
	// latest committed version of them); "" on SQLite, whose write
	// transactions lock the whole database.
	forUpdate string
	// upsertSnapshot writes a snapshot unless a newer one exists; args:
	// stream, key, version, state.
	upsertSnapshot string
}

var dialects = map[appdb.Dialect]dialectSQL{
	appdb.SQLite: {
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {table} (
	position       INTEGER PRIMARY KEY,
	stream         TEXT    NOT NULL,
	version        INTEGER NOT NULL,
	type           TEXT    NOT NULL,
	schema_version INTEGER NOT NULL,
	data           BLOB    NOT NULL,
	metadata       BLOB    NOT NULL,
	recorded_at    INTEGER NOT NULL,
	UNIQUE (stream, version)
)`,
			`CREATE TABLE IF NOT EXISTS {table}_streams (
	stream  TEXT    PRIMARY KEY,
	version INTEGER NOT NULL
)`,
			`CREATE TABLE IF NOT EXISTS {table}_head (
	id       INTEGER PRIMARY KEY,
	position INTEGER NOT NULL
)`,
			`INSERT INTO {table}_head (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING`,
			`CREATE TABLE IF NOT EXISTS {table}_snapshots (
	stream       TEXT    NOT NULL,
	snapshot_key TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	state        BLOB    NOT NULL,
	PRIMARY KEY (stream, snapshot_key)
)`,
		},
		upsertSnapshot: upsertSnapshotSQL,
	},
	appdb.Postgres: {
		schema: []string{
			// Serialise concurrent migrations (see package outbox).
			`SELECT pg_advisory_xact_lock(7418880017520716357)`,
			`CREATE TABLE IF NOT EXISTS {table} (
	position       BIGINT  PRIMARY KEY,
	stream         TEXT    NOT NULL,
	version        BIGINT  NOT NULL,
	type           TEXT    NOT NULL,
	schema_version INTEGER NOT NULL,
	data           BYTEA   NOT NULL,
	metadata       BYTEA   NOT NULL,
	recorded_at    BIGINT  NOT NULL,
	UNIQUE (stream, version)
)`,
			`CREATE TABLE IF NOT EXISTS {table}_streams (
	stream  TEXT   PRIMARY KEY,
	version BIGINT NOT NULL
)`,
			`CREATE TABLE IF NOT EXISTS {table}_head (
	id       INTEGER PRIMARY KEY,
	position BIGINT  NOT NULL
)`,
			`INSERT INTO {table}_head (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING`,
			`CREATE TABLE IF NOT EXISTS {table}_snapshots (
	stream       TEXT   NOT NULL,
	snapshot_key TEXT   NOT NULL,
	version      BIGINT NOT NULL,
	state        BYTEA  NOT NULL,
	PRIMARY KEY (stream, snapshot_key)
)`,
		},
		forUpdate:      " FOR UPDATE",
		upsertSnapshot: upsertSnapshotSQL,
	},
	appdb.MySQL: {
		// Byte strings throughout, as in package outbox.
		schema: []string{
			`CREATE TABLE IF NOT EXISTS {table} (
	position       BIGINT         NOT NULL PRIMARY KEY,
	stream         VARBINARY(255) NOT NULL,
	version        BIGINT         NOT NULL,
	type           VARBINARY(255) NOT NULL,
	schema_version INT            NOT NULL,
	data           LONGBLOB       NOT NULL,
	metadata       LONGBLOB       NOT NULL,
	recorded_at    BIGINT         NOT NULL,
	UNIQUE KEY {name}_stream_version (stream, version)
) ENGINE=InnoDB`,
			`CREATE TABLE IF NOT EXISTS {table}_streams (
	stream  VARBINARY(255) NOT NULL PRIMARY KEY,
	version BIGINT         NOT NULL
) ENGINE=InnoDB`,
			`CREATE TABLE IF NOT EXISTS {table}_head (
	id       INT    NOT NULL PRIMARY KEY,
	position BIGINT NOT NULL
) ENGINE=InnoDB`,
			`INSERT IGNORE INTO {table}_head (id, position) VALUES (1, 0)`,
			`CREATE TABLE IF NOT EXISTS {table}_snapshots (
	stream       VARBINARY(255) NOT NULL,
	snapshot_key VARBINARY(255) NOT NULL,
	version      BIGINT         NOT NULL,
	state        LONGBLOB       NOT NULL,
	PRIMARY KEY (stream, snapshot_key)
) ENGINE=InnoDB`,
		},
		forUpdate: " FOR UPDATE",
		// state first: it compares with the old version.
		upsertSnapshot: `INSERT INTO {table}_snapshots (stream, snapshot_key, version, state) VALUES (?, ?, ?, ?)
ON DUPLICATE KEY UPDATE state = IF(VALUES(version) > version, VALUES(state), state), version = GREATEST(version, VALUES(version))`,
	},
}

const (
	upsertSnapshotSQL = `INSERT INTO {table}_snapshots (stream, snapshot_key, version, state) VALUES (?, ?, ?, ?)
ON CONFLICT (stream, snapshot_key) DO UPDATE SET version = excluded.version, state = excluded.state
WHERE {name}_snapshots.version < excluded.version`
	lockHeadSQL      = `SELECT position FROM {table}_head WHERE id = 1`
	setHeadSQL       = `UPDATE {table}_head SET position = ? WHERE id = 1`
	streamVersionSQL = `SELECT version FROM {table}_streams WHERE stream = ?`
	insertStreamSQL  = `INSERT INTO {table}_streams (stream, version) VALUES (?, ?)`
	updateStreamSQL  = `UPDATE {table}_streams SET version = ? WHERE stream = ? AND version = ?`
	// insertEventsSQL is the head of the multi-row insert; the groups are
	// (position, stream, version, type, schema_version, data, metadata, {now}).
	insertEventsSQL = `INSERT INTO {table} (position, stream, version, type, schema_version, data, metadata, recorded_at) VALUES `
	eventColumns    = `position, stream, version, type, schema_version, data, metadata, recorded_at`
	readStreamSQL   = `SELECT ` + eventColumns + ` FROM {table} WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?`
	readAllSQL      = `SELECT ` + eventColumns + ` FROM {table} WHERE position > ? ORDER BY position LIMIT ?`
	headSQL         = `SELECT position FROM {table}_head WHERE id = 1`
	snapshotSQL     = `SELECT version, state FROM {table}_snapshots WHERE stream = ? AND snapshot_key = ?`
)

// queries is every statement with names filled in and parameters rebound.
type queries struct {
	schema                                          []string
	lockHead, setHead, streamVersion                string
	insertStream, updateStream                      string
	insertEvents                                    string // not rebound: VALUES groups follow
	readStream, readAll, head, snapshot, upsertSnap string
}

func buildQueries(d appdb.Dialect, table string) (queries, error) {
	ds, ok := dialects[d]
	if !ok {
		return queries{}, fmt.Errorf("eventstore: unsupported dialect %v", d)
	}
	if table == "" {
		table = DefaultTable
	}
	t, err := appdb.ParseTable(table, len("_stream_version"))
	if err != nil {
		return queries{}, fmt.Errorf("eventstore: %w", err)
	}
	x := func(s string) string { return d.Rebind(d.Expand(t, s)) }
	q := queries{
		lockHead:      x(lockHeadSQL + ds.forUpdate),
		setHead:       x(setHeadSQL),
		streamVersion: x(streamVersionSQL + ds.forUpdate),
		insertStream:  x(insertStreamSQL),
		updateStream:  x(updateStreamSQL),
		insertEvents:  d.Expand(t, insertEventsSQL),
		readStream:    x(readStreamSQL),
		readAll:       x(readAllSQL),
		head:          x(headSQL),
		snapshot:      x(snapshotSQL),
		upsertSnap:    x(ds.upsertSnapshot),
	}
	for _, s := range ds.schema {
		q.schema = append(q.schema, d.Expand(t, s))
	}
	return q, nil
}
