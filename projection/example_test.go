package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/projection"
)

// A sales-per-product query model, kept in a database of its own.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "projection")
	defer os.RemoveAll(dir)
	open := func(name string) *sql.DB {
		db, err := sqlitedb.Open(ctx, filepath.Join(dir, name), 0)
		if err != nil {
			log.Fatal(err)
		}
		return db
	}
	commands, queries := open("commands.db"), open("queries.db")
	defer commands.Close()
	defer queries.Close()

	store, _ := eventstore.New(commands, eventstore.Config{Dialect: appdb.SQLite})
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	for _, sku := range []string{"pen", "ink", "pen"} {
		if _, err := store.Append(ctx, "order-"+sku, eventstore.AnyVersion,
			eventstore.EventData{Type: "Sold", Data: []byte(sku)}); err != nil {
			log.Fatal(err)
		}
	}

	if _, err := queries.ExecContext(ctx, `CREATE TABLE sales (sku TEXT PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	r, err := projection.New(projection.Config{
		Name: "sales", Source: store, DB: queries, Dialect: appdb.SQLite,
		Apply: func(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO sales (sku, n) VALUES (?, 1)
ON CONFLICT (sku) DO UPDATE SET n = n + 1`, string(e.Data))
			return err
		},
		Reset: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM sales`)
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	lag, _ := r.Lag(ctx)
	fmt.Println("pending:", lag.Events)
	// A service runs r.Run(ctx); here one batch is enough.
	if _, err := r.Step(ctx); err != nil {
		log.Fatal(err)
	}
	lag, _ = r.Lag(ctx)
	fmt.Println("pending:", lag.Events, "checkpoint:", lag.Checkpoint)

	var pens int
	_ = queries.QueryRowContext(ctx, `SELECT n FROM sales WHERE sku = 'pen'`).Scan(&pens)
	fmt.Println("pens sold:", pens)
	// Output:
	// pending: 3
	// pending: 0 checkpoint: 3
	// pens sold: 2
}
