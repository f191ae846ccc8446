package pgtail_test

import (
	"context"
	"log"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// A tailing relay for the dtx_outbox table of the database at dsn, on a
// server started with wal_level=logical (compiled, not run: it needs one).
func ExampleNew() {
	ctx := context.Background()
	dsn := "postgres://app@127.0.0.1:5432/shop"
	var brk broker.Broker                                                   // e.g. natsbroker.Open or kafkabroker.Open
	relay, err := pgtail.New(dsn, brk, pgtail.Config{Slot: "orders_relay"}) // Table defaults to dtx_outbox
	if err != nil {
		log.Fatal(err)
	}
	go relay.Run(ctx)
}
