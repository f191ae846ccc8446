package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a fake broker: it records what is published and can fail,
// sleep, and detect overlapping Publish calls.
type recorder struct {
	// fail, if set, decides whether call number n (from 1) fails; a failing
	// call stores a random subset of its messages first, as a real broker
	// may.
	fail func(n int) bool
	// delay is how long each call takes (it returns early, with ctx's
	// error, when ctx is done).
	delay time.Duration

	inFlight atomic.Int32
	overlaps atomic.Int32

	mu    sync.Mutex
	calls int
	got   []broker.Message
}

func (p *recorder) Publish(ctx context.Context, msgs ...broker.Message) error {
	if p.inFlight.Add(1) > 1 {
		p.overlaps.Add(1)
	}
	defer p.inFlight.Add(-1)
	if p.delay > 0 {
		t := time.NewTimer(p.delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil && p.fail(p.calls) {
		for _, m := range msgs {
			if rand.IntN(2) == 0 {
				p.got = append(p.got, m)
			}
		}
		return errors.New("broker unavailable")
	}
	p.got = append(p.got, msgs...)
	return nil
}

func (p *recorder) messages() []broker.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]broker.Message(nil), p.got...)
}

// distinct returns the number of distinct message ids published.
func (p *recorder) distinct() int {
	seen := map[string]bool{}
	for _, m := range p.messages() {
		seen[m.ID] = true
	}
	return len(seen)
}

// firstSeen returns, per key, the ids in the order of their first
// publication: what a deduplicating consumer processes.
func firstSeen(msgs []broker.Message) map[string][]string {
	seen := map[string]bool{}
	out := map[string][]string{}
	for _, m := range msgs {
		if !seen[m.ID] {
			seen[m.ID] = true
			out[m.Key] = append(out[m.Key], m.ID)
		}
	}
	return out
}

// msg returns message number i of key.
func msg(key string, i int) broker.Message {
	return broker.Message{
		ID:      fmt.Sprintf("%s-%04d", key, i),
		Topic:   "orders",
		Key:     key,
		Headers: map[string]string{broker.HeaderType: "OrderChanged", "N": fmt.Sprint(i)},
		Payload: fmt.Appendf(nil, `{"key":%q,"n":%d}`, key, i),
	}
}

// add writes msgs in one transaction, committed or rolled back.
func add(t testing.TB, db *sql.DB, ob outbox.Outbox, commit bool, msgs ...broker.Message) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, ob.Add(ctx, tx, msgs...))
	if commit {
		require.NoError(t, tx.Commit())
	} else {
		require.NoError(t, tx.Rollback())
	}
}

// writeKeys adds perKey messages for each of keys, one transaction per
// message, from one goroutine per key (so transactions of different keys
// interleave), calling notify after each commit.
func writeKeys(t testing.TB, db *sql.DB, ob outbox.Outbox, keys []string, perKey int, notify func()) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perKey {
				m := msg(k, i)
				add(t, db, ob, true, m)
				if notify != nil {
					notify()
				}
				mu.Lock()
				want[k] = append(want[k], m.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return want
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%02d", i)
	}
	return out
}

// runRelay runs a new relay until the returned stop is called (or the
// test ends).
func runRelay(t testing.TB, db *sql.DB, ob outbox.Outbox, pub outbox.Publisher, cfg outbox.RelayConfig) (*outbox.Relay, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	r, err := outbox.NewRelay(db, ob, pub, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func fast(cfg outbox.RelayConfig) outbox.RelayConfig {
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 2 * time.Second
	}
	return cfg
}

func countRows(t testing.TB, db *sql.DB, where string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+outbox.DefaultTable+" WHERE "+where).Scan(&n))
	return n
}

const waitLong = 20 * time.Second

func TestOutbox(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		setup := func(t *testing.T) (testdb.DB, *sql.DB, outbox.Outbox) {
			d := newDB(t)
			db := d.Open(t)
			ob := outbox.Outbox{Dialect: d.Dialect}
			require.NoError(t, ob.Migrate(context.Background(), db))
			require.NoError(t, ob.Migrate(context.Background(), db), "Migrate is idempotent")
			return d, db, ob
		}

		t.Run("RolledBackNeverPublished", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			m1, m2, m3 := msg("a", 1), msg("a", 2), msg("a", 3)
			m3.Headers, m3.Key, m3.Payload = nil, "", nil
			add(t, db, ob, true, m1)
			add(t, db, ob, false, m2)
			add(t, db, ob, true, m3)
			pub := &recorder{}
			r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{}))
			require.Eventually(t, func() bool { return r.Stats().Published == 2 }, waitLong, 5*time.Millisecond)
			// A rolled-back message between two committed ones: once the
			// later one is out, the relay has passed it.
			m5 := msg("a", 5)
			add(t, db, ob, false, msg("a", 4))
			add(t, db, ob, true, m5)
			r.Notify()
			require.Eventually(t, func() bool { return r.Stats().Published == 3 }, waitLong, 5*time.Millisecond)
			stop()
			require.Equal(t, []broker.Message{m1, m3, m5}, pub.messages(), "fields round-trip; rolled-back messages never appear")
			require.Zero(t, countRows(t, db, "1=1"), "published rows are deleted without retention")
		})

		t.Run("PerKeyOrder", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			pub := &recorder{}
			r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{BatchSize: 7}))
			want := writeKeys(t, db, ob, keys(6), 25, r.Notify)
			require.Eventually(t, func() bool { return pub.distinct() == 150 }, waitLong, 5*time.Millisecond)
			stop()
			require.Len(t, pub.messages(), 150, "no duplicates without failures")
			require.Equal(t, want, firstSeen(pub.messages()))
			require.Equal(t, uint64(150), r.Stats().Published)
			require.Zero(t, r.Stats().Failures)
		})

		t.Run("IntermittentFailures", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			pub := &recorder{fail: func(n int) bool { return n%3 == 1 }}
			r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{BatchSize: 10}))
			want := writeKeys(t, db, ob, keys(4), 20, r.Notify)
			require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond)
			stop()
			require.Equal(t, 80, pub.distinct())
			require.Equal(t, want, firstSeen(pub.messages()), "per-key order holds across partial failures")
			st := r.Stats()
			require.Positive(t, st.Failures)
			require.GreaterOrEqual(t, st.Published, uint64(80))
		})

		t.Run("LagAndRecovery", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			var down atomic.Bool
			down.Store(true)
			pub := &recorder{fail: func(int) bool { return down.Load() }}
			r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{}))
			add(t, db, ob, true, msg("a", 1), msg("b", 1))
			require.Eventually(t, func() bool { st := r.Stats(); return st.Failures >= 2 && st.Lag >= 50*time.Millisecond }, waitLong, 5*time.Millisecond)
			down.Store(false)
			require.Eventually(t, func() bool { return r.Stats().Lag == 0 && r.Stats().Published == 2 }, waitLong, 5*time.Millisecond)
			stop()
			require.Equal(t, 2, pub.distinct())
		})

		t.Run("NotifyWakesIdleRelay", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			pub := &recorder{}
			// Neither polling nor renewing the lease wakes the relay
			// during the test: only Notify can.
			add(t, db, ob, true, msg("a", 1))
			r, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{PollInterval: time.Hour, LeaseTTL: time.Hour}))
			// Its first cycle published the waiting message and found no
			// more: it is going idle.
			require.Eventually(t, func() bool { return r.Stats().Published == 1 }, waitLong, 5*time.Millisecond)
			add(t, db, ob, true, msg("a", 2))
			r.Notify()
			require.Eventually(t, func() bool { return pub.distinct() == 2 }, waitLong, 5*time.Millisecond)
		})

		t.Run("Retention", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			pub := &recorder{}
			r, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{Retention: 300 * time.Millisecond}))
			add(t, db, ob, true, msg("a", 1), msg("a", 2))
			require.Eventually(t, func() bool { return r.Stats().Published == 2 }, waitLong, 5*time.Millisecond)
			require.Equal(t, 2, countRows(t, db, "published_at IS NOT NULL"), "kept while retained")
			require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond, "purged after the retention")
			require.Equal(t, 2, pub.distinct())
		})

		t.Run("RestartKeepsMessages", func(t *testing.T) {
			t.Parallel()
			d, db, ob := setup(t)
			want := writeKeys(t, db, ob, keys(3), 30, nil)
			// The first relay publishes slowly and is stopped half-way
			// (possibly in the middle of a Publish call).
			pub := &recorder{delay: 2 * time.Millisecond}
			r1, stop1 := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{BatchSize: 5}))
			require.Eventually(t, func() bool { return r1.Stats().Published >= 20 }, waitLong, time.Millisecond)
			stop1()
			require.Less(t, pub.distinct(), 90)
			// A new process: new pool, new relay.
			db2 := d.Open(t)
			_, stop2 := runRelay(t, db2, ob, pub, fast(outbox.RelayConfig{BatchSize: 5}))
			require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond)
			stop2()
			require.Equal(t, 90, pub.distinct())
			require.Equal(t, want, firstSeen(pub.messages()))
			require.Zero(t, pub.overlaps.Load())
		})

		t.Run("RelaysNeverOverlap", func(t *testing.T) {
			t.Parallel()
			d, _, ob := setup(t)
			pub := &recorder{delay: time.Millisecond}
			cfg := fast(outbox.RelayConfig{BatchSize: 4, LeaseTTL: time.Second})
			// Three relay processes, each with its own pool; the leader is
			// stopped and restarted repeatedly so the lease changes hands.
			var (
				mu     sync.Mutex
				relays [3]*outbox.Relay
				stops  [3]func()
				dbs    [3]*sql.DB
			)
			for i := range relays {
				dbs[i] = d.Open(t)
				cfg.Owner = fmt.Sprintf("relay-%d", i)
				relays[i], stops[i] = runRelay(t, dbs[i], ob, pub, cfg)
			}
			ctx, cancel := context.WithCancel(context.Background())
			churned := make(chan int)
			go func() {
				n := 0
				defer func() { churned <- n }()
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				seen := 0
				for ctx.Err() == nil {
					// Hand the lease on once the leader has published
					// something: every leader does some of the work.
					d := pub.distinct()
					if d == seen {
						select {
						case <-ctx.Done():
						case <-tick.C:
						}
						continue
					}
					seen = d
					mu.Lock()
					for i, r := range relays {
						if r.Stats().Leader {
							stops[i]()
							cfg.Owner = fmt.Sprintf("relay-%d", i)
							relays[i], stops[i] = runRelay(t, dbs[i], ob, pub, cfg)
							n++
							break
						}
					}
					mu.Unlock()
				}
			}()
			want := writeKeys(t, dbs[0], ob, keys(5), 30, func() {
				mu.Lock()
				defer mu.Unlock()
				for _, r := range relays {
					r.Notify()
				}
			})
			require.Eventually(t, func() bool { return pub.distinct() == 150 }, waitLong, 5*time.Millisecond)
			cancel()
			require.Positive(t, <-churned, "the lease changed hands")
			require.Zero(t, pub.overlaps.Load(), "two relays published at the same time")
			require.Equal(t, want, firstSeen(pub.messages()))
		})

		t.Run("DeadRelayReplaced", func(t *testing.T) {
			t.Parallel()
			d, db, ob := setup(t)
			const ttl = 600 * time.Millisecond
			// Relay A takes the lease, then loses its database (a crash or
			// a partition): it can neither publish nor release the lease.
			dbA := d.Open(t)
			pub := &recorder{}
			a, stopA := runRelay(t, dbA, ob, pub, fast(outbox.RelayConfig{LeaseTTL: ttl}))
			require.Eventually(t, func() bool { return a.Stats().Leader }, waitLong, time.Millisecond)
			require.NoError(t, dbA.Close())
			lost := time.Now()
			defer stopA()

			add(t, db, ob, true, msg("a", 1), msg("a", 2))
			b, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{LeaseTTL: ttl}))
			require.Eventually(t, func() bool { return b.Stats().Leader }, waitLong, time.Millisecond)
			require.GreaterOrEqual(t, time.Since(lost), ttl*3/5, "B took a lease A may still hold")
			require.Eventually(t, func() bool { return pub.distinct() == 2 }, waitLong, time.Millisecond)
			require.Zero(t, pub.overlaps.Load())
		})

		t.Run("CustomTable", func(t *testing.T) {
			t.Parallel()
			d := newDB(t)
			db := d.Open(t)
			ob := outbox.Outbox{Dialect: d.Dialect, Table: "shop_events"}
			require.NoError(t, ob.Migrate(context.Background(), db))
			add(t, db, ob, true, msg("a", 1))
			var n int
			require.NoError(t, db.QueryRow("SELECT count(*) FROM shop_events").Scan(&n))
			require.Equal(t, 1, n)
			pub := &recorder{}
			r, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{}))
			require.Eventually(t, func() bool { return r.Stats().Published == 1 }, waitLong, 5*time.Millisecond)
		})

		t.Run("ManyInOneTransaction", func(t *testing.T) {
			t.Parallel()
			_, db, ob := setup(t)
			var msgs []broker.Message
			for i := range 250 { // more than one INSERT statement
				msgs = append(msgs, msg("bulk", i))
			}
			add(t, db, ob, true, msgs...)
			pub := &recorder{}
			r, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{BatchSize: outbox.MaxBatchSize}))
			require.Eventually(t, func() bool { return r.Stats().Published == 250 }, waitLong, 5*time.Millisecond)
			require.Equal(t, msgs, pub.messages())
		})
	})
}

func TestOutbox_AddInvalid(t *testing.T) {
	ctx := context.Background()
	d := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(ctx, d))
	long := string(make([]byte, outbox.MaxIDLen+1))
	for _, m := range []broker.Message{
		{Topic: "t"},
		{ID: "x"},
		{ID: long, Topic: "t"},
		{ID: "x", Topic: long},
	} {
		tx, err := d.BeginTx(ctx, nil)
		require.NoError(t, err)
		err = ob.Add(ctx, tx, msg("ok", 1), m)
		require.ErrorIs(t, err, outbox.ErrInvalidMessage)
		require.NoError(t, tx.Commit())
	}
	require.Zero(t, countRows(t, d, "1=1"), "an invalid message rejects the whole call")
}

func TestOutbox_InvalidConfig(t *testing.T) {
	ctx := context.Background()
	db := testdbSQLite(t)
	for _, ob := range []outbox.Outbox{{Table: "x; DROP TABLE y"}, {Dialect: 42}, {Table: "a.b.c"}} {
		require.Error(t, ob.Migrate(ctx, db), "%+v", ob)
		_, err := outbox.NewRelay(db, ob, &recorder{}, outbox.RelayConfig{})
		require.Error(t, err)
	}
	ob := outbox.Outbox{}
	for _, cfg := range []outbox.RelayConfig{
		{BatchSize: -1}, {BatchSize: outbox.MaxBatchSize + 1}, {PollInterval: -1},
		{LeaseTTL: time.Millisecond}, {Retention: -1}, {RetryBase: time.Second, RetryMax: time.Millisecond},
	} {
		_, err := outbox.NewRelay(db, ob, &recorder{}, cfg)
		require.Error(t, err, "%+v", cfg)
	}
	err := outbox.RelayConfig{BatchSize: -1, Retention: -1}.Validate()
	require.ErrorContains(t, err, "BatchSize")
	require.ErrorContains(t, err, "Retention", "all problems are reported at once")
}

func TestRelay_RunTwice(t *testing.T) {
	db := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(context.Background(), db))
	r, _ := runRelay(t, db, ob, &recorder{}, fast(outbox.RelayConfig{}))
	require.Eventually(t, func() bool { return r.Stats().Leader }, waitLong, time.Millisecond)
	require.ErrorIs(t, r.Run(context.Background()), outbox.ErrRunning)
}

func TestSchema(t *testing.T) {
	for _, d := range []appdb.Dialect{appdb.SQLite, appdb.Postgres, appdb.MySQL} {
		stmts, err := outbox.Outbox{Dialect: d, Table: "shop.events"}.Schema()
		require.NoError(t, err)
		require.NotEmpty(t, stmts)
		joined := fmt.Sprint(stmts)
		require.Contains(t, joined, "CREATE TABLE IF NOT EXISTS shop.events (")
		require.Contains(t, joined, "CREATE TABLE IF NOT EXISTS shop.events_lease (")
	}
}

// testdbSQLite opens a fresh SQLite database.
func testdbSQLite(t *testing.T) *sql.DB {
	t.Helper()
	return testdb.SQLite(t).Open(t)
}
