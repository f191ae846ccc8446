// Package pgtail is the second outbox relay, for PostgreSQL: instead of
// polling the outbox table it tails the database's transaction log through
// logical replication (the pgoutput plugin), so a committed message reaches
// the broker within milliseconds and an idle outbox costs no queries.
//
//	ob := outbox.Outbox{Dialect: appdb.Postgres}
//	_ = ob.Migrate(ctx, db) // the same table as the polling relay's
//
//	relay, _ := pgtail.New(dsn, brk, pgtail.Config{Slot: "orders_relay"})
//	go relay.Run(ctx) // returns when ctx is done
//
// The server needs wal_level=logical, and the relay's user the REPLICATION
// attribute (or superuser) and the right to create a publication on the
// outbox table. On start the relay creates what is missing: a publication
// of the table's inserts (Config.Publication) and a logical replication
// slot (Config.Slot), which is this relay's position in the log.
//
// # Guarantees
//
// The same as outbox.Relay's:
//
//   - At least once: the relay confirms a position of the log to the server
//     (standby status update) only after the broker acknowledged every
//     message committed up to it. After a crash, a lost connection or a
//     restart of PostgreSQL the server sends again from the last confirmed
//     position, so messages may be published twice (consumers deduplicate
//     by Message.ID, for instance with package inbox) but none is lost.
//   - Order: messages are published in commit order (within a transaction,
//     in the order they were added), and per (Topic, Key) a later message
//     is never handed to the broker before an earlier one was acknowledged.
//   - One publisher at a time: PostgreSQL lets only one connection stream a
//     slot, so several relays with the same Slot may run for availability;
//     the others retry until the slot is free.
//
// # The rows and published_at
//
// The log, not the table, is what the relay reads: a row's content is in
// the WAL record of its insert, so the row itself may be deleted at any
// time without loss. After the broker acknowledged a batch the relay
// deletes its rows, or, with Config.Retention, marks them published
// (published_at) and purges them once older than the retention, exactly as
// the polling relay does; this keeps the table small and keeps
// "published_at IS NULL" meaning "not yet known to be published".
//
// On each start, once it holds the slot, the relay first publishes the rows
// still unmarked (rows written before the slot existed, and the last
// batches of a relay that died between the broker's acknowledgement and
// the marking), in seq order, and then streams from the slot's confirmed
// position, skipping the rows it has just published. Rows left in the table
// are therefore never lost, even when the slot is created after them.
//
// Use either this relay or outbox.Relay on one outbox table, not both (both
// would publish every message). Switching is safe: each publishes the rows
// the other left unmarked.
//
// # Operational cost
//
// A slot keeps the server from recycling WAL the slot has not confirmed: a
// relay that is stopped for good, or a broker that is down, makes WAL grow
// without bound. Watch the slot with SlotStatus (RetainedBytes) and alert on
// it; a running relay also logs a warning when its slot retains more than
// Config.AlertRetainedBytes. Drop the slot of a relay you retire
// (DropSlot).
package pgtail
