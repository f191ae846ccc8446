// Package outbox is the transactional outbox: a service writes the messages
// it wants to publish into a table of its own database, in the same local
// transaction as the business change they announce, and a Relay publishes
// them to the broker afterwards. A rollback removes the change and its
// messages together (no "ghost events"); a broker outage delays messages
// but loses none (no "lost events").
//
// # Writing
//
//	ob := outbox.Outbox{Dialect: appdb.Postgres}
//	_ = ob.Migrate(ctx, db) // once, at start-up
//
//	tx, _ := db.BeginTx(ctx, nil)
//	// ... business writes in tx ...
//	err := ob.Add(ctx, tx, broker.Message{ID: id, Topic: "orders", Key: orderID, Payload: body})
//	// ... then tx.Commit(), and ob.Notify() to publish right away
//
// Add wakes the relays of the table running in the process (they look again
// at short intervals until the commit shows); on PostgreSQL relays also
// LISTEN on NotifyChannel, which NotifyOnCommit makes Add notify.
//
// # Relaying
//
//	relay, _ := outbox.NewRelay(db, ob, brk, outbox.RelayConfig{})
//	go relay.Run(ctx) // returns when ctx is done
//
// The relay reads the oldest unpublished rows (in seq order), publishes
// them at least once (through broker.BatchPublisher when the broker has
// it), keeping the order of messages with the same Topic and
// Key even across failed and partial publishes, and then deletes them (or
// marks them published and keeps them for RelayConfig.Retention). Several
// relays may run against one outbox for availability: a lease row in the
// same database lets only one of them publish at a time, and a standby
// takes over after the holder stops (at once, if it stops cleanly) or dies
// (after RelayConfig.LeaseTTL).
//
// Consumers see every message at least once; they deduplicate by
// Message.ID, for instance with package inbox.
//
// SQLite (modernc, through internal/sqlitedb or with BEGIN IMMEDIATE and a
// busy timeout), PostgreSQL (pgx's database/sql driver) and MySQL/MariaDB
// (InnoDB) are supported, selected with appdb.Dialect.
package outbox
