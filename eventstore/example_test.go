package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// Cart is an event-sourced aggregate: its state is a fold of its events.
type Cart struct {
	Items map[string]int
}

func applyCart(c Cart, e eventstore.Event) (Cart, error) {
	var sku string
	if err := json.Unmarshal(e.Data, &sku); err != nil {
		return c, err
	}
	items := map[string]int{}
	for k, v := range c.Items {
		items[k] = v
	}
	switch e.Type {
	case "ItemAdded":
		items[sku]++
	case "ItemRemoved":
		items[sku]--
	}
	return Cart{Items: items}, nil
}

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventstore")
	defer os.RemoveAll(dir)
	// Any *sql.DB of a supported database; here a SQLite file.
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "shop.db"), 0)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store, err := eventstore.New(db, eventstore.Config{Dialect: appdb.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	// A new cart: expected version NoStream.
	_, err = store.Append(ctx, "cart-1", eventstore.NoStream,
		eventstore.EventData{Type: "ItemAdded", Data: []byte(`"pen"`)},
		eventstore.EventData{Type: "ItemAdded", Data: []byte(`"ink"`)})
	if err != nil {
		log.Fatal(err)
	}

	// A command: load, decide, append with the version loaded.
	cart, version, err := eventstore.Load(ctx, store, "cart-1", Cart{}, applyCart)
	if err != nil {
		log.Fatal(err)
	}
	if cart.Items["ink"] > 0 {
		_, err = store.Append(ctx, "cart-1", version, eventstore.EventData{Type: "ItemRemoved", Data: []byte(`"ink"`)})
		if err != nil {
			log.Fatal(err)
		}
	}

	// A second command with the same, now stale, version is refused.
	_, err = store.Append(ctx, "cart-1", version, eventstore.EventData{Type: "ItemAdded", Data: []byte(`"cap"`)})
	var conflict *eventstore.ConflictError
	fmt.Println(errors.Is(err, eventstore.ErrConflict), errors.As(err, &conflict) && conflict.Actual == 3)

	cart, version, _ = eventstore.Load(ctx, store, "cart-1", Cart{}, applyCart)
	fmt.Println(version, cart.Items["pen"], cart.Items["ink"])

	// Subscribers read the global order.
	all, _ := store.ReadAll(ctx, 0, 10)
	for _, e := range all {
		fmt.Println(e.Position, e.Stream, e.Version, e.Type)
	}
	// Output:
	// true true
	// 3 1 0
	// 1 cart-1 1 ItemAdded
	// 2 cart-1 2 ItemAdded
	// 3 cart-1 3 ItemRemoved
}
