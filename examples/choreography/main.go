// Command choreography is the README's choreography with outbox and
// inbox: the order service writes an order and its OrderPlaced event in
// one local transaction (outbox), a relay publishes the event to a NATS
// JetStream embedded in the process, and the stock service applies it
// once (inbox), whatever the redeliveries, each service in its own SQLite
// database.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/participant/sqlitedb"
)

func main() {
	dir, err := os.MkdirTemp("", "dtx-choreography")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), os.Stdout, dir); err != nil {
		log.Fatal(err)
	}
}

type orderPlaced struct {
	OrderID string `json:"orderId"`
	Qty     int    `json:"qty"`
}

func run(ctx context.Context, out io.Writer, dir string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	brk, err := natsbroker.OpenEmbedded(ctx, filepath.Join(dir, "nats"), natsbroker.Config{})
	if err != nil {
		return err
	}
	defer brk.Close()

	// The stock service: an inbox consumer that reserves stock once per event.
	stockDB, err := sqlitedb.Open(ctx, filepath.Join(dir, "stock.db"))
	if err != nil {
		return err
	}
	defer stockDB.Close()
	in := inbox.Inbox{Dialect: appdb.SQLite}
	if err := in.Migrate(ctx, stockDB); err != nil {
		return err
	}
	if _, err := stockDB.ExecContext(ctx, `CREATE TABLE reserved (order_id TEXT PRIMARY KEY, qty INTEGER)`); err != nil {
		return err
	}
	consumer := inbox.Consumer{Inbox: in, DB: stockDB, Group: "stock",
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			var ev orderPlaced
			if err := json.Unmarshal(d.Payload, &ev); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO reserved VALUES (?, ?)`, ev.OrderID, ev.Qty)
			return err
		}}
	applied := make(chan struct{}, 1) // only for this program: say when the event was handled
	sub, err := brk.Subscribe(ctx, "orders", consumer.Group, func(ctx context.Context, d broker.Delivery) error {
		err := consumer.Handle(ctx, d)
		if err == nil {
			select {
			case applied <- struct{}{}:
			default:
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	defer sub.Close()

	// The order service: the order and its event in one local transaction.
	orderDB, err := sqlitedb.Open(ctx, filepath.Join(dir, "order.db"))
	if err != nil {
		return err
	}
	defer orderDB.Close()
	ob := outbox.Outbox{Dialect: appdb.SQLite}
	if err := ob.Migrate(ctx, orderDB); err != nil {
		return err
	}
	if _, err := orderDB.ExecContext(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT)`); err != nil {
		return err
	}
	relay, err := outbox.NewRelay(orderDB, ob, brk, outbox.RelayConfig{})
	if err != nil {
		return err
	}
	go relay.Run(ctx)

	tx, err := orderDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders VALUES ('o-1', 'PLACED')`); err != nil {
		return err
	}
	payload, _ := json.Marshal(orderPlaced{OrderID: "o-1", Qty: 2})
	if err := ob.Add(ctx, tx, broker.Message{ID: "evt-o-1", Topic: "orders", Key: "o-1",
		Headers: map[string]string{broker.HeaderType: "OrderPlaced"}, Payload: payload}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	relay.Notify() // publish now rather than at the next poll

	select {
	case <-applied:
		var qty int
		if err := stockDB.QueryRowContext(ctx, `SELECT qty FROM reserved WHERE order_id = 'o-1'`).Scan(&qty); err != nil {
			return err
		}
		fmt.Fprintf(out, "stock reserved %d for order o-1\n", qty)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
