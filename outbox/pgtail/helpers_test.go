package pgtail_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// The test helpers below mirror those of the polling relay's tests
// (outbox/outbox_test.go), so that both relays meet the same expectations.

var discard = slog.New(slog.NewTextHandler(logOut(), nil))

func logOut() io.Writer {
	if os.Getenv("PGTAIL_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

const waitLong = 30 * time.Second

// logical are the server settings logical replication needs, with room for
// the slots of parallel tests.
var logical = pgtest.Options{Settings: map[string]string{
	"wal_level":             "logical",
	"max_replication_slots": "40",
	"max_wal_senders":       "40",
}}

// newDB creates a database on srv (not dropped: a database with a slot
// cannot be; the server goes away with the test) and migrates the outbox.
func newDB(t testing.TB, srv *pgtest.Server) (string, *sql.DB, outbox.Outbox) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	dsn, err := srv.CreateDB(context.Background(), "t_"+hex.EncodeToString(b[:]))
	require.NoError(t, err)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ob := outbox.Outbox{Dialect: appdb.Postgres}
	require.NoError(t, ob.Migrate(context.Background(), db))
	return dsn, db, ob
}

// recorder is a fake broker: it records what is published and can fail,
// sleep, and detect overlapping Publish calls.
type recorder struct {
	fail  func(n int) bool
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
			if mrand.IntN(2) == 0 {
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
// message, from one goroutine per key.
func writeKeys(t testing.TB, db *sql.DB, ob outbox.Outbox, keys []string, perKey int) map[string][]string {
	t.Helper()
	return writeKeysFrom(t, db, ob, keys, 0, perKey)
}

// writeKeysFrom is writeKeys with messages numbered from first.
func writeKeysFrom(t testing.TB, db *sql.DB, ob outbox.Outbox, keys []string, first, perKey int) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := first; i < first+perKey; i++ {
				m := msg(k, i)
				add(t, db, ob, true, m)
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

// fast shortens the relay's intervals for tests.
func fast(cfg pgtail.Config) pgtail.Config {
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 50 * time.Millisecond
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 5*time.Millisecond, 100*time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	return cfg
}

// runRelay runs a new tailing relay until the returned stop is called (or
// the test ends).
func runRelay(t testing.TB, dsn string, pub outbox.Publisher, cfg pgtail.Config) (*pgtail.Relay, func()) {
	t.Helper()
	r, err := pgtail.New(dsn, pub, fast(cfg))
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

func countRows(t testing.TB, db *sql.DB, where string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+outbox.DefaultTable+" WHERE "+where).Scan(&n))
	return n
}
