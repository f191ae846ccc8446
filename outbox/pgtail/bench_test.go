package pgtail_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// acker wraps a broker and reports, per message id, when the broker
// acknowledged it.
type acker struct {
	outbox.Publisher
	mu      sync.Mutex
	waiting map[string]chan time.Time
}

func (a *acker) expect(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	a.mu.Lock()
	a.waiting[id] = ch
	a.mu.Unlock()
	return ch
}

func (a *acker) Publish(ctx context.Context, msgs ...broker.Message) error {
	if err := a.Publisher.Publish(ctx, msgs...); err != nil {
		return err
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range msgs {
		if ch, ok := a.waiting[m.ID]; ok {
			ch <- now
			delete(a.waiting, m.ID)
		}
	}
	return nil
}

// BenchmarkCommitToBroker measures the latency from a transaction's commit
// to the broker's acknowledgement of its message, one message at a time,
// for the tailing relay and the polling relay (woken by Notify, as an
// application in the same process would, and left to its poll interval,
// as a relay in another process is), on one PostgreSQL server and the
// embedded NATS broker. It reports p50 and p99 in milliseconds:
//
//	go test -run '^$' -bench CommitToBroker -benchtime 300x ./outbox/pgtail
func BenchmarkCommitToBroker(b *testing.B) {
	srv := pgtest.StartWith(b, logical)
	ctx := context.Background()
	brk, err := natsbroker.OpenEmbedded(ctx, b.TempDir(), natsbroker.Config{Logger: discard})
	require.NoError(b, err)
	b.Cleanup(func() { brk.Close() })

	type relay struct {
		name  string
		start func(b *testing.B, dsn string, db *sql.DB, pub outbox.Publisher) (notify func())
	}
	for _, rl := range []relay{
		{"tailing", func(b *testing.B, dsn string, _ *sql.DB, pub outbox.Publisher) func() {
			// Each run has a database, so a slot, of its own.
			benchRuns++
			r, _ := runRelay(b, dsn, pub, pgtail.Config{Slot: fmt.Sprintf("bench_%d", benchRuns)})
			require.Eventually(b, func() bool { return r.Stats().Streaming }, waitLong, time.Millisecond)
			return func() {}
		}},
		{"polling-notify", func(b *testing.B, _ string, db *sql.DB, pub outbox.Publisher) func() {
			r := runPolling(b, db, pub, outbox.RelayConfig{})
			return r.Notify
		}},
		{"polling-100ms", func(b *testing.B, _ string, db *sql.DB, pub outbox.Publisher) func() {
			runPolling(b, db, pub, outbox.RelayConfig{PollInterval: 100 * time.Millisecond})
			return func() {}
		}},
	} {
		b.Run(rl.name, func(b *testing.B) {
			dsn, db, ob := newDB(b, srv)
			pub := &acker{Publisher: brk, waiting: map[string]chan time.Time{}}
			notify := rl.start(b, dsn, db, pub)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				m := msg(rl.name, i)
				acked := pub.expect(m.ID)
				add(b, db, ob, true, m)
				committed := time.Now()
				notify()
				select {
				case at := <-acked:
					lat = append(lat, at.Sub(committed))
				case <-time.After(waitLong):
					b.Fatalf("message %s not acknowledged", m.ID)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}

var benchRuns int

// runPolling runs a polling relay until the benchmark ends.
func runPolling(b *testing.B, db *sql.DB, pub outbox.Publisher, cfg outbox.RelayConfig) *outbox.Relay {
	cfg.Logger = discard
	r, err := outbox.NewRelay(db, outbox.Outbox{Dialect: appdb.Postgres}, pub, cfg)
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return r
}
