package inbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"log"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
)

// A consumer group applies each message at most once; malformed messages
// and messages that keep failing end up in the dead-letter table.
func ExampleConsumer() {
	ctx := context.Background()
	var (
		db  *sql.DB       // the consumer's own database (PostgreSQL here)
		brk broker.Broker // any broker adapter
	)
	in := inbox.Inbox{Dialect: appdb.Postgres}
	if err := in.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	c := inbox.Consumer{
		Inbox: in,
		DB:    db,
		Group: "inventory",
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			var ev struct{ OrderID string }
			if err := json.Unmarshal(d.Payload, &ev); err != nil {
				return dtx.Permanent(err) // never retried: dead-lettered at once
			}
			_, err := tx.ExecContext(ctx, `UPDATE stock SET reserved = reserved + 1 WHERE order_id = $1`, ev.OrderID)
			return err // an error is retried, up to MaxAttempts deliveries
		},
	}
	if _, err := brk.Subscribe(ctx, "orders", c.Group, c.Handle); err != nil {
		log.Fatal(err)
	}

	// Later, an operator looks at what failed and replays it.
	dead, err := c.DeadLetters(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, dl := range dead {
		if err := c.Replay(ctx, dl.Message.ID); err != nil {
			log.Printf("replay %s: %v", dl.Message.ID, err)
		}
	}
}
