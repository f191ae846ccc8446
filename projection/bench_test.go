package projection_test

import (
	"context"
	"testing"

	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/projection"
)

// BenchmarkProjection measures how fast a runner catches up on a backlog of
// b.N events (appended beforehand, 100 per transaction, over 50 carts),
// applying them to the cart model of the tests in batches of 100; the
// query model is in a database of its own. The op is one event.
func BenchmarkProjection(b *testing.B) {
	for _, c := range []struct {
		name           string
		command, query func(testing.TB) testdb.DB
	}{
		{"SQLiteToSQLite", testdb.SQLite, testdb.SQLite},
		{"PostgresToSQLite", testdb.Postgres, testdb.SQLite},
		{"PostgresToPostgres", testdb.Postgres, testdb.Postgres},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			cdb := c.command(b)
			store, err := eventstore.New(cdb.Open(b), eventstore.Config{Dialect: cdb.Dialect})
			if err != nil {
				b.Fatal(err)
			}
			if err := store.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			qdb := c.query(b)
			model := cartModel{db: qdb.Open(b), d: qdb.Dialect}
			for _, s := range []string{
				`CREATE TABLE cart_items (cart VARCHAR(200) NOT NULL, sku VARCHAR(200) NOT NULL, qty INT NOT NULL, PRIMARY KEY (cart, sku))`,
				`CREATE TABLE applied_log (position BIGINT NOT NULL)`,
			} {
				if _, err := model.db.ExecContext(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			skus := []string{"pen", "ink", "cap", "pad"}
			for left, i := b.N, 0; left > 0; i++ {
				n := min(left, 100)
				evs := make([]eventstore.EventData, n)
				for j := range evs {
					evs[j] = eventstore.EventData{Type: "ItemAdded", Data: []byte(skus[j%len(skus)])}
				}
				if _, err := store.Append(ctx, "cart-"+string(rune('a'+i%50)), eventstore.AnyVersion, evs...); err != nil {
					b.Fatal(err)
				}
				left -= n
			}
			r, err := projection.New(projection.Config{Name: "bench", Source: store, DB: model.db, Dialect: model.d,
				Apply: model.apply, BatchSize: 100})
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			applied := 0
			for applied < b.N {
				n, err := r.Step(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatalf("caught up after %d of %d events", applied, b.N)
				}
				applied += n
			}
		})
	}
}
