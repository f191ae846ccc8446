package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/testdb"
)

// BenchmarkAppend measures appends of one event per transaction by 8
// writer goroutines (b.N events in all). OwnStreams: each writer appends to
// a stream of its own with the version it holds (no conflicts; the cost of
// the store-wide append lock). OneStream: all writers load and append to
// the same stream and retry on conflict (optimistic concurrency under
// contention); conflicts/op reports the refused appends per stored event.
func BenchmarkAppend(b *testing.B) {
	dbs := []struct {
		name   string
		server func(b *testing.B) func(testing.TB) testdb.DB
	}{
		{"SQLite", func(*testing.B) func(testing.TB) testdb.DB { return testdb.SQLite }},
		{"Postgres", func(*testing.B) func(testing.TB) testdb.DB { return testdb.Postgres }},
		{"MySQL", func(b *testing.B) func(testing.TB) testdb.DB {
			srv := mariadbtest.Start(b)
			return func(tb testing.TB) testdb.DB { return testdb.MySQL(tb, srv) }
		}},
	}
	for _, d := range dbs {
		b.Run(d.name, func(b *testing.B) {
			newDB := d.server(b)
			b.Run("OwnStreams", func(b *testing.B) { benchAppend(b, newDB(b), false) })
			b.Run("OneStream", func(b *testing.B) { benchAppend(b, newDB(b), true) })
		})
	}
}

func benchAppend(b *testing.B, tdb testdb.DB, shared bool) {
	ctx := context.Background()
	s, err := eventstore.New(tdb.Open(b), eventstore.Config{Dialect: tdb.Dialect})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	const writers = 8
	var left, conflicts atomic.Int64
	left.Store(int64(b.N))
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("own-%d", w)
			if shared {
				stream = "shared"
			}
			var version int64
			for left.Add(-1) >= 0 {
				for {
					_, err := s.Append(ctx, stream, version, eventstore.EventData{Type: "E", Data: []byte(`{}`)})
					var ce *eventstore.ConflictError
					if errors.As(err, &ce) {
						conflicts.Add(1)
						version = ce.Actual
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					version++
					break
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/op")
}
