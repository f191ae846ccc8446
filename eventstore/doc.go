// Package eventstore keeps the state of an application as the sequence of
// events that changed it (event sourcing), in a table of the application's
// own database: SQLite, PostgreSQL or MySQL/MariaDB through database/sql.
//
// # Streams, versions and conflicts
//
// Events belong to a stream, usually one aggregate ("cart-42"). Each event
// of a stream has a version, 1, 2, 3, … A command loads the aggregate,
// decides, and appends new events with the version it loaded as the
// expected version:
//
//	cart, version, err := eventstore.Load(ctx, store, "cart-42", Cart{}, applyCart)
//	// ... check the command against cart ...
//	_, err = store.Append(ctx, "cart-42", version, eventstore.EventData{Type: "ItemAdded", Data: payload})
//	if errors.Is(err, eventstore.ErrConflict) {
//		// someone else appended first: load again and decide again
//	}
//
// Append refuses, with a *ConflictError, an expected version that is not
// the stream's current one (NoStream expects a new stream, AnyVersion skips
// the check), and writes nothing. That is optimistic concurrency: no lock is
// held between load and append, and two commands that raced cannot both
// succeed on the same version.
//
// # Folding and snapshots
//
// Load folds the events of a stream with a pure Apply function into a
// state. Aggregate does the same with snapshots: with SnapshotEvery N, Load
// saves the JSON-encoded state once N events followed the last snapshot and
// starts later loads there. Change SnapshotKey when the state's meaning
// changes; older snapshots are then ignored.
//
// # Event schema versions
//
// Every event has a Type and a SchemaVersion (1 unless given). When the
// payload of a type changes, bump its schema version for new events and
// register an Upcaster from the old version in Config.Upcasters: events are
// upcast, step by step, whenever they are read (ReadStream, ReadAll, Load),
// so Apply and projections only see the newest layout. Stored rows are never
// rewritten.
//
// # The global order, for subscribers
//
// Every event also gets a position in the whole store: 1, 2, 3, … without
// gaps, in commit order. A subscriber (see package projection) remembers the
// last position it handled and asks ReadAll for what follows; it never
// skips an event. This is not what a sequence or AUTO_INCREMENT column
// would give: with concurrent writers, a transaction can take position 7,
// another position 8 and commit first, and a reader that already moved past
// 8 would never see 7. The store instead serialises position assignment
// with a lock on one row (the _head table) held until the appending
// transaction ends: a position is handed out only after every smaller one
// has committed or rolled back (and a rollback gives its positions back).
// The cost is that appends do not run in parallel, even on different
// streams: keep appending transactions short.
//
// # Atomic with publishing
//
// An event is stored and published together, or not at all, in one of two
// ways:
//
//   - AppendTx appends inside the caller's *sql.Tx: the events commit with
//     whatever else the transaction writes.
//   - Config.Outbox makes every append also write one message per event
//     (see Message: id "<stream>@<version>", key the stream) into a
//     transactional outbox (package outbox) of the same database; its Relay
//     publishes them after the commit, and an inbox absorbs the duplicates
//     a relay may produce. A consumer turns a message back into the event
//     with EventFromMessage (and Store.Upcast).
//
// Alternatively, a subscriber reads the event table itself through ReadAll.
//
// # Tables
//
// Migrate creates the event table (Config.Table, default "dtx_events") and
// its companions <table>_streams (each stream's version), <table>_head (the
// last position) and <table>_snapshots. The conformance suite in
// eventstore/eventstoretest runs on every supported database.
package eventstore
