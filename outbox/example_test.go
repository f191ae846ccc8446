package outbox_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/outbox"
)

// A service writes its state change and the event announcing it in one
// local transaction; a relay publishes the event after the commit.
func Example() {
	ctx := context.Background()
	var (
		db  *sql.DB       // the service's own database (PostgreSQL here)
		brk broker.Broker // any broker adapter
	)
	ob := outbox.Outbox{Dialect: appdb.Postgres}
	if err := ob.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	relay, err := outbox.NewRelay(db, ob, brk, outbox.RelayConfig{})
	if err != nil {
		log.Fatal(err)
	}
	go relay.Run(ctx) // in a real service: owned and stopped by main

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'CREATED' WHERE id = $1`, "o-1"); err != nil {
		log.Fatal(err)
	}
	if err := ob.Add(ctx, tx, broker.Message{
		ID:      "evt-1",
		Topic:   "orders",
		Key:     "o-1",
		Headers: map[string]string{broker.HeaderType: "OrderCreated"},
		Payload: []byte(`{"orderId":"o-1"}`),
	}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	relay.Notify() // publish now rather than at the next poll
}
