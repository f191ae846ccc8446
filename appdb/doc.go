// Package appdb is the SQL that dtx runs in the application's own database:
// the tables a service keeps next to its business data so that its part of
// a distributed transaction commits or rolls back with its local writes.
// The participant barrier (package participant and participant/pgxbarrier),
// the XA branch tables (participant/xa), the transactional outbox (outbox)
// and the idempotent inbox (inbox) all build their statements from it.
//
// It holds the vocabulary those packages share, and nothing else:
//
//   - Dialect names the database (SQLite, Postgres, MySQL/MariaDB); a
//     package that owns a table selects its statements by Dialect.
//   - Statements are written once with ? parameters and placeholders for
//     names: Dialect.Expand fills in {table}, {name}, {schema.} and {now}
//     (the database clock, Dialect.NowMillis), and Dialect.Rebind turns ?
//     into $1, $2, … for PostgreSQL.
//   - ParseTable is the one rule for the table names a user may configure:
//     an identifier, optionally schema-qualified, short enough for the
//     suffixes of derived tables and indexes.
//   - Placeholders and List build multi-row VALUES and IN lists.
//   - Migrate runs a table's schema statements in one transaction, on
//     database/sql (FromSQL) or on any driver through Beginner.
//
// appdb does no I/O of its own beyond Migrate and keeps no state. The
// coordinator's own store (store/sqlstore) is separate: it owns a database
// of its own, with its own migrations.
package appdb
