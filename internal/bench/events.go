package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/outbox"
)

// EventsResult is the JSON form of `dtx bench --pattern events`; its
// fields are a contract for scripts.
type EventsResult struct {
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
	// InProcessCPUPerEvent is the CPU milliseconds per consumed event of
	// the whole bench process (producers, relay, embedded broker and
	// consumer together); InProcessCPUCores is that CPU over the wall time.
	InProcessCPUPerEvent float64 `json:"inprocess_cpu_ms_per_event"`
	InProcessCPUCores    float64 `json:"inprocess_cpu_cores"`
	// HostCPUBusy is the busy share (0..1) of the whole host's CPU over the
	// measured period, -1 if unknown.
	HostCPUBusy float64 `json:"host_cpu_busy_share"`
	// RawCommits is the physical limit of the producer's side, measured
	// right after in the same run: single-row INSERT transactions per
	// second with as many clients, on the producer's PostgreSQL database
	// or, for SQLite, a sibling file on the same disk with the same
	// settings. Each event costs at least one producer commit, so events/s
	// cannot pass it.
	RawCommits float64 `json:"producer_raw_commits_per_s"`
	// IdleCPUCores is the process's CPU over Config.Idle without events
	// (relay, broker and consumer waiting), in cores; -1 if not measured.
	IdleCPUCores float64 `json:"idle_cpu_cores"`
	IdleSeconds  float64 `json:"idle_s"`
	// EventsPerTx is how many events each producer transaction wrote
	// (Config.EventsPerTx); the producer's commit limit on events/s is
	// RawCommits times it.
	EventsPerTx int `json:"events_per_tx"`
	// Partitions is Config.Partitions (0: the broker's default).
	Partitions int `json:"partitions,omitempty"`
}

// WriteText writes r as the table `dtx bench --pattern events` prints.
func (r *EventsResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "pattern      events (outbox -> broker -> inbox)\nstore        %s\nbroker       %s\nproducers    %d%s\nproduced     %d in %.1fs\nconsumed     %d (%.0f events/s)\nlatency ms   commit to consumer commit: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		r.Store, brokerText(r.Broker, r.Partitions), r.Clients, perTxText(r.EventsPerTx), r.Produced, r.Seconds, r.Consumed, r.PerSec, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	writeCPU(w, "events", r.InProcessCPUPerEvent, r.InProcessCPUCores, r.HostCPUBusy)
	if r.IdleSeconds > 0 {
		fmt.Fprintf(w, "idle         %.4f cores over %.0fs without events (polling and waiting)\n", r.IdleCPUCores, r.IdleSeconds)
	}
	if r.RawCommits > 0 {
		n := float64(max(r.EventsPerTx, 1))
		fmt.Fprintf(w, "limit        %.0f single-row commits/s on the producer's store with %d clients (events/s over that: %.2f; producer transactions/s over that: %.2f)\n",
			r.RawCommits, r.Clients, r.PerSec/r.RawCommits, r.PerSec/n/r.RawCommits)
	}
}

// brokerText is the broker line: its label, and the partitions asked for.
func brokerText(label string, partitions int) string {
	if partitions > 0 {
		return fmt.Sprintf("%s, %d partitions", label, partitions)
	}
	return label
}

// perTxText is the producers line's note on events per transaction.
func perTxText(n int) string {
	if n <= 1 {
		return " (one event per transaction)"
	}
	return fmt.Sprintf(" (%d events per transaction, each under its own key)", n)
}

// benchEvents measures the event path of the choreographed shop: each
// client commits a business row and its event (transactional outbox), the
// relay publishes to the broker, and a consumer applies it once (inbox)
// in its own database. Each producer waits until its event has been
// consumed before it commits the next (a closed loop over the whole path,
// so no backlog builds up): throughput counts consumed events, latency runs
// from the producer's commit to the consumer's commit.
//
// cfg.Store is sqlite or postgres-temp, cfg.Broker embedded, nats://… or
// kafka://….
func RunEvents(ctx context.Context, cfg Config) (*EventsResult, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dir, err := os.MkdirTemp("", "dtx-bench-events-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &eventsRun{cfg: cfg, perTx: max(cfg.EventsPerTx, 1)}
	defer e.close()
	if err := e.openDBs(ctx, dir); err != nil {
		return nil, err
	}
	b, blabel, err := open.BrokerWith(ctx, cfg.Broker, dir, open.BrokerOptions{Partitions: cfg.Partitions})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := e.migrate(ctx); err != nil {
		return nil, err
	}
	// The default PollInterval: the producers' Add wakes the relay (and
	// Notify after their commit), so polling is only the fallback.
	relay, err := outbox.NewRelay(e.prodDB, e.ob, b, outbox.RelayConfig{Owner: "bench"})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var relayDone sync.WaitGroup
	relayDone.Go(func() { relay.Run(runCtx) })
	sub, err := b.Subscribe(ctx, "bench-events", "bench", e.consume)
	if err != nil {
		return nil, err
	}
	defer sub.Close()

	prodCtx, stopProducers := context.WithCancel(runCtx)
	defer stopProducers()
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Go(func() { e.produce(prodCtx, relay, c) })
	}
	fmt.Fprintf(cfg.Log, "bench: events outbox -> %s -> inbox, store %s, %d producers: warm-up %v, measuring %v…\n", blabel, e.label, cfg.Clients, cfg.Warmup, cfg.Duration)
	sleepCtx(ctx, cfg.Warmup)
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	e.measuring.Store(true)
	start, cpu0 := time.Now(), sampleCPU()
	sleepCtx(ctx, cfg.Duration)
	e.measuring.Store(false)
	cpu1, elapsed := sampleCPU(), time.Since(start)
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	cpu := cpuBetween(cpu0, cpu1, elapsed, e.consumed.Load())
	stopProducers()
	wg.Wait()
	idle := -1.0
	if cfg.Idle > 0 {
		// Let the last events through, then measure doing nothing.
		sleepCtx(ctx, 500*time.Millisecond)
		i0, t0 := sampleCPU(), time.Now()
		sleepCtx(ctx, cfg.Idle)
		idle = cpuBetween(i0, sampleCPU(), time.Since(t0), 0).processCores
	}
	cancel()
	relayDone.Wait()
	// The physical limit, in the same run: single-row commits on the
	// producer's database (PostgreSQL) or disk (SQLite).
	raw, err := rawCommitRate(ctx, e.prodDSN, cfg.Clients, min(cfg.Duration, 3*time.Second))
	if err != nil {
		return nil, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	sort.Slice(e.lat, func(i, j int) bool { return e.lat[i] < e.lat[j] })
	pct := func(p float64) float64 { return percentileMs(e.lat, p) }

	return &EventsResult{
		Pattern: "events", Store: e.label, Broker: blabel, Clients: cfg.Clients, Seconds: elapsed.Seconds(),
		Produced: e.produced.Load(), Consumed: e.consumed.Load(), PerSec: float64(e.consumed.Load()) / elapsed.Seconds(),
		P50ms: pct(0.5), P90ms: pct(0.9), P99ms: pct(0.99), MaxMs: pct(1), LagMs: float64(relay.Stats().Lag.Microseconds()) / 1000,
		Warmup_s: cfg.Warmup.Seconds(), Dialect: strings.ToLower(fmt.Sprint(e.dialect)), Consumers: 1,
		InProcessCPUPerEvent: cpu.processMsPerTx, InProcessCPUCores: cpu.processCores, HostCPUBusy: cpu.hostBusy,
		RawCommits: raw, IdleCPUCores: idle, IdleSeconds: cfg.Idle.Seconds(), EventsPerTx: e.perTx,
		Partitions: cfg.Partitions,
	}, nil
}

// eventsRun is the state of one RunEvents.
type eventsRun struct {
	cfg            Config
	perTx          int // events per producer transaction
	prodDB, consDB *sql.DB
	prodDSN        string // for rawCommitRate
	dialect        appdb.Dialect
	label          string
	cleanup        func()
	ob             outbox.Outbox
	cons           *inbox.Batcher

	waiting            sync.Map // message id -> *txWait
	measuring          atomic.Bool
	produced, consumed atomic.Int64
	mu                 sync.Mutex
	lat                []time.Duration
}

// sqliteEventConns is the connection pool size of each SQLite database of
// the events bench. SQLite takes one writer at a time: with several pooled
// connections, the producers, the relay and the consumer's writers wait
// for the lock in SQLite's busy handler, which sleeps in growing steps
// (up to 100 ms) rather than waking when the lock is free; with one
// connection they queue in database/sql and go on the moment it is
// released. Measured in the same run (8 producers, medians of 3 rounds):
// see README, "Event pipeline throughput".
const sqliteEventConns = 1

// openDBs opens the producer's and the consumer's databases: SQLite files
// in dir, or two databases on a throwaway PostgreSQL.
func (e *eventsRun) openDBs(ctx context.Context, dir string) error {
	var err error
	switch e.cfg.Store {
	case "sqlite":
		e.dialect, e.label = appdb.SQLite, "sqlite ("+dir+")"
		e.prodDSN = filepath.Join(dir, "producer.db")
		if e.prodDB, err = sqlitedb.Open(ctx, e.prodDSN, sqliteEventConns); err != nil {
			return err
		}
		e.consDB, err = sqlitedb.Open(ctx, filepath.Join(dir, "consumer.db"), sqliteEventConns)
		return err
	case "postgres-temp":
		t, err := pgserver.StartTemp(ctx, "producer", "consumer")
		if err != nil {
			return err
		}
		e.cleanup = t.Close
		e.label, e.dialect = t.Label, appdb.Postgres
		e.prodDSN = t.DSNs[0]
		if e.prodDB, err = sql.Open("pgx", e.prodDSN); err != nil {
			return err
		}
		if e.consDB, err = sql.Open("pgx", t.DSNs[1]); err != nil {
			return err
		}
		// Keep every connection the run uses open: database/sql keeps 2
		// idle by default, and with more concurrent transactions than that
		// each one forked a new PostgreSQL backend and closed it again,
		// which was most of the time of an event (measured: 43 events/s at
		// 32 producers before, see README).
		for _, db := range []*sql.DB{e.prodDB, e.consDB} {
			db.SetMaxOpenConns(e.cfg.Clients + 32)
			db.SetMaxIdleConns(e.cfg.Clients + 32)
		}
		return nil
	}
	return fmt.Errorf("store %q: the events bench takes sqlite or postgres-temp", e.cfg.Store)
}

func (e *eventsRun) close() {
	for _, db := range []*sql.DB{e.prodDB, e.consDB} {
		if db != nil {
			db.Close()
		}
	}
	if e.cleanup != nil {
		e.cleanup()
	}
}

// migrate creates the business tables, the outbox and the inbox.
func (e *eventsRun) migrate(ctx context.Context) error {
	for _, q := range []struct {
		db *sql.DB
		s  string
	}{
		{e.prodDB, `CREATE TABLE items (id TEXT PRIMARY KEY, client INTEGER NOT NULL)`},
		{e.consDB, `CREATE TABLE applied (client INTEGER PRIMARY KEY, n BIGINT NOT NULL)`},
	} {
		if _, err := q.db.ExecContext(ctx, q.s); err != nil {
			return err
		}
	}
	e.ob = outbox.Outbox{Dialect: e.dialect}
	if err := e.ob.Migrate(ctx, e.prodDB); err != nil {
		return err
	}
	in := inbox.Inbox{Dialect: e.dialect}
	if err := in.Migrate(ctx, e.consDB); err != nil {
		return err
	}
	// The consumer applies the deliveries of the broker's partitions in
	// shared transactions (group commit): Process only writes through tx.
	// Prepared once, as an application would (SQLite parses an
	// unprepared statement on every Exec).
	apply, err := e.consDB.PrepareContext(ctx, `INSERT INTO applied (client, n) VALUES ($1, 1) ON CONFLICT (client) DO UPDATE SET n = applied.n + 1`)
	if err != nil {
		return err
	}
	c := inbox.Consumer{Inbox: in, DB: e.consDB, Group: "bench", Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
		_, err := tx.StmtContext(ctx, apply).ExecContext(ctx, d.Key)
		return err
	}}
	e.cons, err = inbox.NewBatcher(c, 0)
	return err
}

// consume applies one delivery once (inbox), wakes its producer and
// records its latency from the producer's commit.
func (e *eventsRun) consume(ctx context.Context, d broker.Delivery) error {
	if err := e.cons.Handle(ctx, d); err != nil {
		return err
	}
	if w, ok := e.waiting.LoadAndDelete(d.ID); ok {
		defer w.(*txWait).consumed()
	}
	if !e.measuring.Load() {
		return nil
	}
	if at, err := time.Parse(time.RFC3339Nano, d.Headers["Dtx-Time"]); err == nil {
		e.consumed.Add(1)
		e.mu.Lock()
		e.lat = append(e.lat, time.Since(at))
		e.mu.Unlock()
	}
	return nil
}

// txWait is a producer transaction's events not consumed yet.
type txWait struct {
	left atomic.Int32
	done chan struct{} // closed when left reaches 0
}

// consumed counts one of the transaction's events as consumed.
func (w *txWait) consumed() {
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

// produce commits a row and its events (e.perTx, each under its own key),
// then waits for them to be consumed before the next, until ctx is done.
func (e *eventsRun) produce(ctx context.Context, relay *outbox.Relay, c int) {
	ids := make([]string, e.perTx)
	msgs := make([]broker.Message, 0, e.perTx)
	for i := 0; ctx.Err() == nil; i++ {
		w := &txWait{done: make(chan struct{})}
		w.left.Store(int32(e.perTx))
		for j := range ids {
			ids[j] = fmt.Sprintf("%d-%d-%d-%d", time.Now().UnixNano(), c, i, j)
			e.waiting.Store(ids[j], w)
		}
		tx, err := e.prodDB.BeginTx(ctx, nil)
		if err != nil {
			e.forget(ids)
			continue
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO items (id, client) VALUES ($1, $2)`, ids[0], c)
		at := time.Now().UTC().Format(time.RFC3339Nano)
		msgs = msgs[:0]
		for j := range ids {
			// The consumer's table counts per key (an integer column).
			key := strconv.Itoa(c*e.perTx + j)
			msgs = append(msgs, broker.Message{ID: ids[j], Topic: "bench-events", Key: key,
				Headers: map[string]string{"Dtx-Time": at}, Payload: []byte(`{"n":1}`)})
		}
		if err == nil {
			err = e.ob.Add(ctx, tx, msgs...) // one statement for all of them
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			e.forget(ids)
			continue
		}
		relay.Notify()
		if e.measuring.Load() {
			e.produced.Add(int64(e.perTx))
		}
		select {
		case <-w.done:
		case <-ctx.Done():
		}
	}
}

// forget stops waiting for the events of a transaction that did not commit.
func (e *eventsRun) forget(ids []string) {
	for _, id := range ids {
		e.waiting.Delete(id)
	}
}
