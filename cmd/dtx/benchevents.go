package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/outbox"
)

// eventsBenchResult is the JSON form of `dtx bench --pattern events`.
type eventsBenchResult struct {
	Pattern   string  `json:"pattern"`
	Store     string  `json:"store"`
	Broker    string  `json:"broker"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"elapsed_s"`
	Produced  int64   `json:"produced"`
	Consumed  int64   `json:"consumed"`
	PerSec    float64 `json:"events_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P90ms     float64 `json:"p90_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	LagMs     float64 `json:"outbox_lag_ms_at_end"`
	Warmup_s  float64 `json:"warmup_s"`
	Dialect   string  `json:"dialect"`
	Consumers int     `json:"consumer_groups"`
}

// benchEvents measures the event path of the choreographed shop: each
// client commits a business row and its event (transactional outbox), the
// relay publishes to the broker, and a consumer applies it once (inbox)
// in its own database. Each producer waits until its event has been
// consumed before it commits the next (a closed loop over the whole path,
// so no backlog builds up): throughput counts consumed events, latency runs
// from the producer's commit to the consumer's commit.
func benchEvents(ctx context.Context, storeKind, brokerSpec string, clients int, duration, warmup time.Duration, asJSON bool) error {
	dir, err := os.MkdirTemp("", "dtx-bench-events-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var prodDB, consDB *sql.DB
	dialect := appdb.SQLite
	label := "sqlite (" + dir + ")"
	switch storeKind {
	case "sqlite":
		if prodDB, err = sqlitedb.Open(ctx, filepath.Join(dir, "producer.db"), 8); err != nil {
			return err
		}
		if consDB, err = sqlitedb.Open(ctx, filepath.Join(dir, "consumer.db"), 8); err != nil {
			return err
		}
	case "postgres-temp":
		dsns, l, cleanup, err := startTempPostgres(ctx, "producer", "consumer")
		if err != nil {
			return err
		}
		defer cleanup()
		label, dialect = l, appdb.Postgres
		if prodDB, err = sql.Open("pgx", dsns[0]); err != nil {
			return err
		}
		if consDB, err = sql.Open("pgx", dsns[1]); err != nil {
			return err
		}
	default:
		return usagef("store %q: the events bench takes sqlite or postgres-temp", storeKind)
	}
	defer prodDB.Close()
	defer consDB.Close()
	b, blabel, err := openBroker(ctx, brokerSpec, dir)
	if err != nil {
		return err
	}
	defer b.Close()

	for _, q := range []struct {
		db *sql.DB
		s  string
	}{
		{prodDB, `CREATE TABLE items (id TEXT PRIMARY KEY, client INTEGER NOT NULL)`},
		{consDB, `CREATE TABLE applied (client INTEGER PRIMARY KEY, n BIGINT NOT NULL)`},
	} {
		if _, err := q.db.ExecContext(ctx, q.s); err != nil {
			return err
		}
	}
	ob := outbox.Outbox{Dialect: dialect}
	if err := ob.Migrate(ctx, prodDB); err != nil {
		return err
	}
	in := inbox.Inbox{Dialect: dialect}
	if err := in.Migrate(ctx, consDB); err != nil {
		return err
	}
	relay, err := outbox.NewRelay(prodDB, ob, b, outbox.RelayConfig{PollInterval: 100 * time.Millisecond, Owner: "bench"})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var relayDone sync.WaitGroup
	relayDone.Go(func() { relay.Run(runCtx) })

	var waiting sync.Map // message id -> chan struct{}
	var measuring atomic.Bool
	var produced, consumed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	cons := inbox.Consumer{Inbox: in, DB: consDB, Group: "bench", Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO applied (client, n) VALUES ($1, 1) ON CONFLICT (client) DO UPDATE SET n = applied.n + 1`, d.Key)
		return err
	}}
	sub, err := b.Subscribe(ctx, "bench-events", "bench", func(ctx context.Context, d broker.Delivery) error {
		if err := cons.Handle(ctx, d); err != nil {
			return err
		}
		if ch, ok := waiting.LoadAndDelete(d.ID); ok {
			defer close(ch.(chan struct{}))
		}
		if !measuring.Load() {
			return nil
		}
		if at, err := time.Parse(time.RFC3339Nano, d.Headers["Dtx-Time"]); err == nil {
			consumed.Add(1)
			mu.Lock()
			lat = append(lat, time.Since(at))
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Close()

	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; runCtx.Err() == nil; i++ {
				id := fmt.Sprintf("%d-%d-%d", time.Now().UnixNano(), c, i)
				done := make(chan struct{})
				waiting.Store(id, done)
				tx, err := prodDB.BeginTx(runCtx, nil)
				if err != nil {
					continue
				}
				_, err = tx.ExecContext(runCtx, `INSERT INTO items (id, client) VALUES ($1, $2)`, id, c)
				if err == nil {
					err = ob.Add(runCtx, tx, broker.Message{ID: id, Topic: "bench-events", Key: fmt.Sprint(c),
						Headers: map[string]string{"Dtx-Time": time.Now().UTC().Format(time.RFC3339Nano)}, Payload: []byte(`{"n":1}`)})
				}
				if err == nil {
					err = tx.Commit()
				} else {
					tx.Rollback()
				}
				if err != nil {
					waiting.Delete(id)
					continue
				}
				relay.Notify()
				if measuring.Load() {
					produced.Add(1)
				}
				select {
				case <-done:
				case <-runCtx.Done():
				}
			}
		})
	}
	if !asJSON {
		fmt.Fprintf(os.Stderr, "bench: events outbox -> %s -> inbox, store %s, %d producers: warm-up %v, measuring %v…\n", blabel, label, clients, warmup, duration)
	}
	sleepCtx(ctx, warmup)
	measuring.Store(true)
	start := time.Now()
	sleepCtx(ctx, duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	relayDone.Wait()

	mu.Lock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return percentileMs(lat, p) }
	res := eventsBenchResult{
		Pattern: "events", Store: label, Broker: blabel, Clients: clients, Seconds: elapsed.Seconds(),
		Produced: produced.Load(), Consumed: consumed.Load(), PerSec: float64(consumed.Load()) / elapsed.Seconds(),
		P50ms: pct(0.5), P90ms: pct(0.9), P99ms: pct(0.99), MaxMs: pct(1), LagMs: float64(relay.Stats().Lag.Microseconds()) / 1000,
		Warmup_s: warmup.Seconds(), Dialect: strings.ToLower(fmt.Sprint(dialect)), Consumers: 1,
	}
	mu.Unlock()
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("pattern      events (outbox -> broker -> inbox)\nstore        %s\nbroker       %s\nproducers    %d\nproduced     %d in %.1fs\nconsumed     %d (%.0f events/s)\nlatency ms   commit to consumer commit: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		res.Store, res.Broker, res.Clients, res.Produced, res.Seconds, res.Consumed, res.PerSec, res.P50ms, res.P90ms, res.P99ms, res.MaxMs)
	return nil
}
