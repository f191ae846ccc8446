package brokerha_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/outbox"
)

// pipeline is a producer's outbox and relay, a broker, and a consumer's
// inbox, each database a SQLite file. Events are keyed; the payload of a
// key's n-th event is n, and the consumer records each event it applies,
// in the order it applies them, in its table applied, inside the inbox's
// transaction: a duplicate or a reordering would show there.
type pipeline struct {
	t     *testing.T
	topic string
	keys  int
	prod  *sql.DB
	cons  *sql.DB
	ob    outbox.Outbox
	relay *outbox.Relay
	pub   *watchedPublisher
	added atomic.Int64
}

func newPipeline(t *testing.T, b broker.Broker, topic string, keys int) *pipeline {
	t.Helper()
	ctx := ctxT(t)
	dir := t.TempDir()
	p := &pipeline{t: t, topic: topic, keys: keys, ob: outbox.Outbox{Dialect: appdb.SQLite}, pub: &watchedPublisher{b: b}}
	var err error
	p.prod, err = sqlitedb.Open(ctx, filepath.Join(dir, "producer.db"), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.prod.Close() })
	require.NoError(t, p.ob.Migrate(ctx, p.prod))
	p.cons, err = sqlitedb.Open(ctx, filepath.Join(dir, "consumer.db"), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.cons.Close() })
	in := inbox.Inbox{Dialect: appdb.SQLite}
	require.NoError(t, in.Migrate(ctx, p.cons))
	_, err = p.cons.ExecContext(ctx, `CREATE TABLE applied (ord INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, k TEXT NOT NULL, n INTEGER NOT NULL)`)
	require.NoError(t, err)

	c := inbox.Consumer{
		Inbox: in, DB: p.cons, Group: "ha", MaxAttempts: 1000,
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			n, err := strconv.Atoi(string(d.Payload))
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO applied (msg_id, k, n) VALUES (?, ?, ?)`, d.ID, d.Key, n)
			return err
		},
	}
	sub, err := b.Subscribe(ctx, topic, c.Group, c.Handle)
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })

	p.relay, err = outbox.NewRelay(p.prod, p.ob, p.pub, outbox.RelayConfig{PollInterval: 50 * time.Millisecond, BatchSize: 50})
	require.NoError(t, err)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.relay.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return p
}

// add writes the next n events to the outbox, one transaction each.
func (p *pipeline) add(ctx context.Context, n int) error {
	for range n {
		i := int(p.added.Load())
		tx, err := p.prod.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		err = p.ob.Add(ctx, tx, broker.Message{
			ID: fmt.Sprintf("e%06d", i), Topic: p.topic, Key: fmt.Sprintf("k%d", i%p.keys),
			Payload: []byte(strconv.Itoa(i / p.keys)),
		})
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil && ctx.Err() != nil {
			// Cancelled while the transaction was open: database/sql rolled
			// it back, and Commit may say only ErrTxDone.
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		p.added.Add(1)
		p.relay.Notify()
	}
	return nil
}

// produce adds an event every interval until the returned stop is called;
// stop returns how many events were added in all.
func (p *pipeline) produce(interval time.Duration) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err = p.add(ctx, 1); err != nil && ctx.Err() == nil {
				return
			}
		}
	})
	return func() int {
		cancel()
		wg.Wait()
		if ctx.Err() == nil || (err != nil && !errors.Is(err, context.Canceled)) {
			require.NoError(p.t, err, "producer")
		}
		return int(p.added.Load())
	}
}

func (p *pipeline) applied(ctx context.Context) int {
	var n int
	require.NoError(p.t, p.cons.QueryRowContext(ctx, `SELECT COUNT(*) FROM applied`).Scan(&n))
	return n
}

// waitApplied waits until at least n events were applied.
func (p *pipeline) waitApplied(ctx context.Context, n int, what string) {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for p.applied(ctx) < n {
		select {
		case <-ctx.Done():
			p.t.Fatalf("%s: %d of %d events applied, relay %+v", what, p.applied(context.Background()), n, p.relay.Stats())
		case <-tick.C:
		}
	}
}

// progress waits until n more events than now were applied.
func (p *pipeline) progress(ctx context.Context, n int, what string) {
	p.t.Helper()
	p.waitApplied(ctx, p.applied(ctx)+n, what)
}

// check asserts that each of the total events was applied exactly once,
// and every key's events in order.
func (p *pipeline) check(ctx context.Context, total int) {
	p.t.Helper()
	p.waitApplied(ctx, total, "all events")
	var dups int
	require.NoError(p.t, p.cons.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM (SELECT msg_id FROM applied GROUP BY msg_id HAVING COUNT(*) > 1)`).Scan(&dups))
	require.Zero(p.t, dups, "events applied more than once")
	require.Equal(p.t, total, p.applied(ctx), "events applied")
	rows, err := p.cons.QueryContext(ctx, `SELECT k, n FROM applied ORDER BY ord`)
	require.NoError(p.t, err)
	defer rows.Close()
	next := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(p.t, rows.Scan(&k, &n))
		require.Equal(p.t, next[k], n, "key %s applied out of order", k)
		next[k] = n + 1
	}
	require.NoError(p.t, rows.Err())
	require.Len(p.t, next, min(total, p.keys))
}

// watchedPublisher passes the relay's publishes on to the broker and
// measures them while a fault is on: the messages published and the
// longest time without a successful publish.
type watchedPublisher struct {
	b broker.Broker

	mu       sync.Mutex
	faulty   bool
	lastOK   time.Time
	during   int           // messages published while faulty
	maxPause time.Duration // longest gap between successful publishes while faulty
}

func (w *watchedPublisher) Publish(ctx context.Context, msgs ...broker.Message) error {
	err := w.b.Publish(ctx, msgs...)
	if err == nil {
		w.mu.Lock()
		now := time.Now()
		if w.faulty {
			w.during += len(msgs)
			w.maxPause = max(w.maxPause, now.Sub(w.lastOK))
		}
		w.lastOK = now
		w.mu.Unlock()
	}
	return err
}

// fault marks the start (on) or end of a fault.
func (w *watchedPublisher) fault(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faulty = on
	if on && w.lastOK.IsZero() {
		w.lastOK = time.Now()
	}
}

// figures returns the figures since the last call and starts anew.
func (w *watchedPublisher) figures() (during int, maxPause time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	during, maxPause = w.during, w.maxPause
	w.during, w.maxPause = 0, 0
	return during, maxPause
}
