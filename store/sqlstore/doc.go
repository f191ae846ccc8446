// Package sqlstore implements dtx.Store on database/sql for any SQL dialect
// the adapters in store/sqlite, store/postgres and store/mysql describe. It owns the
// group-commit writer: concurrent Create and Apply calls are queued and
// written in one database transaction per batch, so the number of fsyncs per
// saga stays well below the number of state changes.
package sqlstore
