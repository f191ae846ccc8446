// Package projection maintains query models (the read side of CQRS) from the
// events of package eventstore.
//
// The command side writes events; a projection turns them into tables
// shaped for the questions the application asks ("the order history of a
// customer", "sales per product"). Those tables may live in another
// database, even another product, than the events: commands on PostgreSQL
// and queries on SQLite next to the service that reads them is fine.
//
// # Exactly once
//
// A Runner reads the events after its checkpoint (eventstore's global
// position, which never skips an event that commits late) and applies a
// batch of them to the query model in one transaction of the query database
// that also advances the checkpoint, a row of the table dtx_projections in
// that same database. A crash before the commit loses the batch's updates
// and its checkpoint together, so the next run applies the batch again from
// scratch; after the commit, both are durable. Each event therefore takes
// effect once, without the query model having to be idempotent. Config.Apply
// must write only through the transaction it is given.
//
// Several Runners of one projection (one per replica) may run at once: they
// take turns on the checkpoint row, and a runner that finds the checkpoint
// moved re-reads instead of applying again.
//
// # Running, rebuilding, watching
//
//	r, err := projection.New(projection.Config{
//		Name: "order-history", Source: store, DB: queryDB, Dialect: appdb.SQLite,
//		Apply: applyOrderHistory, Reset: truncateOrderHistory,
//	})
//	err = r.Migrate(ctx)
//	go r.Run(ctx) // until ctx is done
//
// Run polls every PollInterval when caught up (Notify wakes it earlier) and
// retries a failed batch with backoff, logging it and counting it in Stats:
// an event that Apply keeps refusing holds the projection at that event,
// which Lag shows. Cancelling ctx stops Run; a batch in flight rolls back.
//
// Rebuild empties the query model (Config.Reset) and sets the checkpoint to
// 0 in one transaction, so that the runner applies every event again: the
// way to fix a bug in Apply or to add a column. Lag reports the head of the
// event store, the checkpoint, the number of events between them, and how
// long ago the oldest pending event was recorded.
//
// # Through the broker
//
// A query model in another service can instead be fed by the messages the
// event store writes into its outbox (eventstore.Config.Outbox):
// FromBroker turns a projection's Apply into the Process function of an
// inbox.Consumer, whose inbox makes each message take effect once. Events
// then arrive in order per stream rather than globally, and rebuilding
// means replaying the store with a Runner.
package projection
