package pgtail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoSlot is returned (wrapped) by SlotStatus and DropSlot for a slot
// that does not exist.
var ErrNoSlot = errors.New("pgtail: no such replication slot")

// Slot describes a logical replication slot, as SlotStatus reads it from
// pg_replication_slots.
type Slot struct {
	// Name is the slot's name.
	Name string
	// Active reports whether a relay is streaming from the slot now.
	Active bool
	// ConfirmedLSN is the position up to which the slot's reader confirmed
	// the log ("" if it never did).
	ConfirmedLSN string
	// RetainedBytes is how much WAL the server keeps for the slot:
	// pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn). It grows
	// while nobody reads the slot; alert on it.
	RetainedBytes int64
}

const slotStatusSQL = `SELECT active, COALESCE(confirmed_flush_lsn::text, ''),
	COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
FROM pg_replication_slots WHERE slot_name = $1`

// SlotStatus reads the state of the replication slot name in db (any
// database of the server). It serves monitoring: a slot whose
// RetainedBytes keeps growing has a reader that is down or stuck.
func SlotStatus(ctx context.Context, db *sql.DB, name string) (Slot, error) {
	s := Slot{Name: name}
	err := db.QueryRowContext(ctx, slotStatusSQL, name).Scan(&s.Active, &s.ConfirmedLSN, &s.RetainedBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Slot{}, fmt.Errorf("%w: %q", ErrNoSlot, name)
	}
	if err != nil {
		return Slot{}, fmt.Errorf("pgtail: slot status: %w", err)
	}
	return s, nil
}

// DropSlot drops the replication slot name, releasing the WAL it retains;
// do it when retiring a relay for good (its unconfirmed messages are then
// left to the rows still in the outbox table). It fails while a relay
// streams from the slot.
func DropSlot(ctx context.Context, db *sql.DB, name string) error {
	var n int
	err := db.QueryRowContext(ctx,
		`SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&n)
	if err != nil {
		return fmt.Errorf("pgtail: drop slot %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", ErrNoSlot, name)
	}
	return nil
}

// setup creates the publication and the slot if they are missing. It is
// safe to run concurrently from several relays.
func (r *Relay) setup(ctx context.Context) error {
	var exists bool
	if err := r.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, r.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("pgtail: look up publication: %w", err)
	}
	if !exists {
		stmt := fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert')`, r.cfg.Publication, r.table.Full)
		if _, err := r.db.ExecContext(ctx, stmt); err != nil && !isDuplicate(err) {
			return fmt.Errorf("pgtail: create publication: %w", err)
		}
		r.log.InfoContext(ctx, "outbox tailing relay: publication created", "publication", r.cfg.Publication)
	}

	var plugin, database sql.NullString
	err := r.db.QueryRowContext(ctx,
		`SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&plugin, &database)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err := r.db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, r.cfg.Slot)
		if err != nil && !isDuplicate(err) {
			return fmt.Errorf("pgtail: create slot %q: %w", r.cfg.Slot, err)
		}
		r.log.InfoContext(ctx, "outbox tailing relay: replication slot created", "slot", r.cfg.Slot)
		return nil
	case err != nil:
		return fmt.Errorf("pgtail: look up slot: %w", err)
	}
	var current string
	if err := r.db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&current); err != nil {
		return fmt.Errorf("pgtail: current database: %w", err)
	}
	if plugin.String != "pgoutput" || database.String != current {
		return fmt.Errorf("pgtail: slot %q exists but is not a pgoutput slot of database %q (plugin %q, database %q)",
			r.cfg.Slot, current, plugin.String, database.String)
	}
	return nil
}

// isDuplicate reports PostgreSQL's duplicate_object error (a concurrent
// relay created the object first).
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42710"
}
