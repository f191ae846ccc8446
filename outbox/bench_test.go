package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
)

// counter is a publisher that only counts.
type counter struct{ n atomic.Int64 }

func (c *counter) Publish(_ context.Context, msgs ...broker.Message) error {
	c.n.Add(int64(len(msgs)))
	return nil
}

// BenchmarkRelay measures end-to-end throughput. AddAndRelay: 8 writer
// goroutines each commit one message per transaction (with Notify after
// the commit) while a relay publishes them; the clock stops when the last
// one is published. AddOnly is the same without a relay (the cost of the
// commits alone). Drain measures the relay alone, on a backlog added
// beforehand (100 messages per transaction, 16 keys).
func BenchmarkRelay(b *testing.B) {
	dbs := []struct {
		name string
		// server returns the database factory, starting what it needs
		// once for all the runs of the sub-benchmarks.
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
			b.Run("AddOnly", func(b *testing.B) { benchAddAndRelay(b, newDB(b), 8, false) })
			b.Run("AddAndRelay", func(b *testing.B) { benchAddAndRelay(b, newDB(b), 8, true) })
			b.Run("Drain", func(b *testing.B) { benchDrain(b, newDB(b)) })
		})
	}
}

func setupBench(b *testing.B, d testdb.DB) (outbox.Outbox, func(testing.TB) *outbox.Relay, *counter) {
	b.Helper()
	db := d.Open(b)
	ob := outbox.Outbox{Dialect: d.Dialect}
	if err := ob.Migrate(context.Background(), db); err != nil {
		b.Fatal(err)
	}
	pub := &counter{}
	start := func(tb testing.TB) *outbox.Relay {
		r, _ := runRelay(tb, db, ob, pub, outbox.RelayConfig{BatchSize: 500, PollInterval: 10 * time.Millisecond, Logger: discard})
		return r
	}
	return ob, start, pub
}

func waitPublished(b *testing.B, pub *counter, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for pub.n.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("published %d of %d", pub.n.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func benchAddAndRelay(b *testing.B, d testdb.DB, writers int, relay bool) {
	ob, start, pub := setupBench(b, d)
	db := d.Open(b)
	notify := func() {}
	if relay {
		notify = start(b).Notify
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				tx, err := db.BeginTx(ctx, nil)
				if err == nil {
					err = ob.Add(ctx, tx, broker.Message{ID: fmt.Sprint(i), Topic: "bench", Key: fmt.Sprint(w), Payload: []byte(`{"n":1}`)})
				}
				if err == nil {
					err = tx.Commit()
				}
				if err != nil {
					b.Error(err)
					return
				}
				notify()
			}
		}()
	}
	wg.Wait()
	if relay {
		waitPublished(b, pub, b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func benchDrain(b *testing.B, d testdb.DB) {
	ob, start, pub := setupBench(b, d)
	db := d.Open(b)
	batch := make([]broker.Message, 0, 100)
	for i := 0; i < b.N; {
		batch = batch[:0]
		for ; i < b.N && len(batch) < cap(batch); i++ {
			batch = append(batch, broker.Message{ID: fmt.Sprint(i), Topic: "bench", Key: fmt.Sprint(i % 16), Payload: []byte(`{"n":1}`)})
		}
		add(b, db, ob, true, batch...)
	}
	b.ResetTimer()
	start(b)
	waitPublished(b, pub, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
