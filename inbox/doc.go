// Package inbox is the idempotent-consumer side of messaging: brokers
// deliver at least once (and a transactional outbox publishes at least
// once), so a consumer records each message it processed, in the same local
// transaction as the message's effects, and ignores it when it comes again.
//
// # Handling a message
//
//	in := inbox.Inbox{Dialect: appdb.Postgres}
//	_ = in.Migrate(ctx, db) // once, at start-up
//
//	err := in.Handle(ctx, db, d, "inventory", func(tx *sql.Tx) error {
//		// apply the message's effects through tx
//	})
//
// Handle inserts the row (group, message id) and runs fn in one
// transaction: a duplicate finds the row and does nothing, a failure rolls
// the row back with the effects so that the redelivery runs fn again, and
// concurrent duplicates wait for each other so that exactly one takes
// effect.
//
// # Dead letters
//
// Consumer wraps Handle into a broker.Handler for one consumer group. A
// message that keeps failing (MaxAttempts deliveries) or fails with an
// error marked dtx.Permanent is moved to a dead-letter table in the same
// database, with its content, error and attempt count, and acknowledged, so
// that it stops blocking the messages behind it. An operator lists the dead
// letters (Consumer.DeadLetters), then replays one once the cause is fixed
// (Consumer.Replay, which runs Process again, at most once, and removes the
// dead letter on success) or discards it (Consumer.Discard).
//
// # Group commit
//
// A Batcher (NewBatcher) is a broker.Handler that applies the deliveries
// arriving concurrently (one per broker partition) in shared transactions,
// one commit for many messages, each acknowledged only after its commit; a
// batch that fails is applied again one delivery at a time, so a poison
// message fails alone.
//
// SQLite (modernc, through internal/sqlitedb or with BEGIN IMMEDIATE and a
// busy timeout), PostgreSQL (pgx's database/sql driver) and MySQL/MariaDB
// (InnoDB) are supported, selected with appdb.Dialect.
package inbox
