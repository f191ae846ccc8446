// Package sqlstore implements dtx.Store on database/sql for any SQL dialect
// the adapters in store/sqlite, store/postgres and store/mysql describe. It owns the
// group-commit writer: concurrent Create and Apply calls are queued and
// written in one database transaction per batch, so the number of fsyncs per
// saga stays well below the number of state changes.
//
// Its Dialect is deliberately not appdb.Dialect. Package appdb serves the
// few tables dtx keeps inside the user's own database (barrier, outbox,
// inbox, XA ids), whose statements are written once with ? parameters and
// selected by a three-valued enum. The coordinator's store owns its whole
// database: per dialect it carries its own schema migrations and migrations
// table, its own statement overrides, locking clauses and writer count, and
// its own parameter binding (statements written with $N, rewritten to ? with
// the arguments reordered for MySQL). A struct that describes a backend
// belongs with that backend; the two only look alike by name.
package sqlstore
