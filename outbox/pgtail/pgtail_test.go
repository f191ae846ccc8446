package pgtail_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// TestTailing runs the polling relay's expectations (outbox_test.go)
// against the tailing relay, on one PostgreSQL server with
// wal_level=logical; each subtest has a database and a slot of its own.
func TestTailing(t *testing.T) {
	srv := pgtest.StartWith(t, logical)

	t.Run("RolledBackNeverPublished", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		m1, m2, m3 := msg("a", 1), msg("a", 2), msg("a", 3)
		m3.Headers, m3.Key, m3.Payload = nil, "", nil
		pub := &recorder{}
		r, stop := runRelay(t, dsn, pub, pgtail.Config{Slot: "rolled_back"})
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		add(t, db, ob, true, m1)
		add(t, db, ob, false, m2)
		add(t, db, ob, true, m3)
		require.Eventually(t, func() bool { return r.Stats().Published == 2 }, waitLong, 5*time.Millisecond)
		m5 := msg("a", 5)
		add(t, db, ob, false, msg("a", 4))
		add(t, db, ob, true, m5)
		require.Eventually(t, func() bool { return r.Stats().Published == 3 }, waitLong, 5*time.Millisecond)
		require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond,
			"published rows are deleted without retention")
		stop()
		require.Equal(t, []broker.Message{m1, m3, m5}, pub.messages(), "fields round-trip; rolled-back messages never appear")
	})

	t.Run("PerKeyOrder", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{}
		r, stop := runRelay(t, dsn, pub, pgtail.Config{Slot: "per_key", BatchSize: 7})
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		want := writeKeys(t, db, ob, keys(6), 25)
		require.Eventually(t, func() bool { return pub.distinct() == 150 }, waitLong, 5*time.Millisecond)
		stop()
		require.Len(t, pub.messages(), 150, "no duplicates without failures")
		require.Equal(t, want, firstSeen(pub.messages()))
		require.Equal(t, uint64(150), r.Stats().Published)
		require.Zero(t, r.Stats().Failures)
		require.Zero(t, pub.overlaps.Load())
	})

	t.Run("IntermittentFailures", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{fail: func(n int) bool { return n%3 == 1 }}
		r, stop := runRelay(t, dsn, pub, pgtail.Config{Slot: "intermittent", BatchSize: 10})
		want := writeKeys(t, db, ob, keys(4), 20)
		require.Eventually(t, func() bool { return pub.distinct() == 80 }, waitLong, 10*time.Millisecond)
		require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond)
		stop()
		require.Equal(t, want, firstSeen(pub.messages()), "per-key order holds across partial failures")
		st := r.Stats()
		require.Positive(t, st.Failures)
		require.GreaterOrEqual(t, st.Published, uint64(80))
	})

	t.Run("CommittedWhileDown", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		// Written before the slot exists: only the table has them.
		want := writeKeys(t, db, ob, keys(3), 10)
		pub := &recorder{}
		cfg := pgtail.Config{Slot: "while_down", BatchSize: 4}
		r1, stop1 := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return pub.distinct() == 30 }, waitLong, 5*time.Millisecond)
		require.Eventually(t, func() bool { return r1.Stats().Streaming }, waitLong, 5*time.Millisecond)
		stop1()
		// Written while no relay runs: the slot keeps them.
		more := writeKeysFrom(t, db, ob, []string{"k00", "k01", "x"}, 10, 10)
		add(t, db, ob, false, msg("x", 99))
		for k, ids := range more {
			want[k] = append(want[k], ids...)
		}
		_, stop2 := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return pub.distinct() == 60 }, waitLong, 5*time.Millisecond)
		require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond)
		stop2()
		require.Equal(t, want, firstSeen(pub.messages()))
		require.Zero(t, pub.overlaps.Load())
	})

	t.Run("RowsDeletedBeforePublishing", func(t *testing.T) {
		t.Parallel()
		// The log, not the table, is the source: a row deleted after its
		// commit (a purge, an operator) is still published.
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{}
		cfg := pgtail.Config{Slot: "deleted_rows"}
		r, stop := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		stop()
		add(t, db, ob, true, msg("a", 1), msg("a", 2))
		_, err := db.Exec("DELETE FROM " + outbox.DefaultTable)
		require.NoError(t, err)
		_, stop = runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return pub.distinct() == 2 }, waitLong, 5*time.Millisecond)
		stop()
		require.Equal(t, []broker.Message{msg("a", 1), msg("a", 2)}, pub.messages())
	})

	t.Run("Retention", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{}
		r, _ := runRelay(t, dsn, pub, pgtail.Config{Slot: "retention", Retention: 500 * time.Millisecond})
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		add(t, db, ob, true, msg("a", 1), msg("a", 2))
		require.Eventually(t, func() bool { return countRows(t, db, "published_at IS NOT NULL") == 2 }, waitLong, 5*time.Millisecond,
			"kept, marked published, while retained")
		require.Equal(t, uint64(2), r.Stats().Published)
		require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 10*time.Millisecond, "purged after the retention")
		require.Equal(t, []broker.Message{msg("a", 1), msg("a", 2)}, pub.messages())
	})

	t.Run("ManyInOneTransaction", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		var msgs []broker.Message
		for i := range 250 {
			msgs = append(msgs, msg("bulk", i))
		}
		pub := &recorder{}
		r, _ := runRelay(t, dsn, pub, pgtail.Config{Slot: "many", BatchSize: outbox.MaxBatchSize})
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		add(t, db, ob, true, msgs...)
		require.Eventually(t, func() bool { return r.Stats().Published == 250 }, waitLong, 5*time.Millisecond)
		require.Equal(t, msgs, pub.messages())
	})

	t.Run("OneStreamPerSlot", func(t *testing.T) {
		t.Parallel()
		// Two relays on one slot: PostgreSQL lets one stream, the other
		// waits; stopping the first hands over to the second.
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{delay: time.Millisecond}
		cfg := pgtail.Config{Slot: "shared", BatchSize: 3}
		a, stopA := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return a.Stats().Streaming }, waitLong, 5*time.Millisecond)
		b, _ := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return b.Stats().Errors > 0 }, waitLong, 5*time.Millisecond, "the second relay is refused the slot")
		require.False(t, b.Stats().Streaming)
		want := writeKeys(t, db, ob, keys(3), 10)
		require.Eventually(t, func() bool { return pub.distinct() == 30 }, waitLong, 5*time.Millisecond)
		stopA()
		require.Eventually(t, func() bool { return b.Stats().Streaming }, waitLong, 5*time.Millisecond)
		more := writeKeysFrom(t, db, ob, keys(3)[:1], 10, 10)
		want["k00"] = append(want["k00"], more["k00"]...)
		require.Eventually(t, func() bool { return pub.distinct() == 40 }, waitLong, 5*time.Millisecond)
		require.Zero(t, pub.overlaps.Load(), "two relays published at the same time")
		require.Equal(t, want, firstSeen(pub.messages()))
	})

	t.Run("SlotRetainsWALWhileStopped", func(t *testing.T) {
		t.Parallel()
		dsn, db, ob := newDB(t, srv)
		pub := &recorder{}
		cfg := pgtail.Config{Slot: "retained"}
		r, stop := runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		add(t, db, ob, true, msg("a", 0))
		require.Eventually(t, func() bool { return pub.distinct() == 1 }, waitLong, 5*time.Millisecond)
		// A running relay confirms what it published: the slot retains
		// (almost) nothing.
		require.Eventually(t, func() bool {
			s, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
			return err == nil && s.Active && s.RetainedBytes < 64<<10 && s.ConfirmedLSN == r.Stats().ConfirmedLSN
		}, waitLong, 10*time.Millisecond)
		stop()
		require.Eventually(t, func() bool {
			s, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
			return err == nil && !s.Active
		}, waitLong, 10*time.Millisecond)
		before, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
		require.NoError(t, err)
		big := make([]broker.Message, 200)
		for i := range big {
			big[i] = msg("b", i)
			big[i].Payload = make([]byte, 1000)
		}
		add(t, db, ob, true, big...)
		after, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
		require.NoError(t, err)
		require.Greater(t, after.RetainedBytes, before.RetainedBytes+200_000, "an unread slot retains the WAL written since")
		require.Equal(t, before.ConfirmedLSN, after.ConfirmedLSN)

		// Reading it again releases the WAL.
		_, stop = runRelay(t, dsn, pub, cfg)
		require.Eventually(t, func() bool {
			s, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
			return err == nil && s.RetainedBytes < after.RetainedBytes/2
		}, waitLong, 10*time.Millisecond)
		stop()
		require.Equal(t, 201, pub.distinct())

		require.Eventually(t, func() bool {
			s, err := pgtail.SlotStatus(context.Background(), db, cfg.Slot)
			return err == nil && !s.Active
		}, waitLong, 10*time.Millisecond)
		require.NoError(t, pgtail.DropSlot(context.Background(), db, cfg.Slot))
		_, err = pgtail.SlotStatus(context.Background(), db, cfg.Slot)
		require.ErrorIs(t, err, pgtail.ErrNoSlot)
		require.ErrorIs(t, pgtail.DropSlot(context.Background(), db, cfg.Slot), pgtail.ErrNoSlot)
	})

	t.Run("BrokerOutage", func(t *testing.T) {
		t.Parallel()
		// The broker is down: nothing is confirmed, the slot retains the
		// WAL; once it is back everything goes out, in order.
		dsn, db, ob := newDB(t, srv)
		var down atomic.Bool
		down.Store(true)
		pub := &recorder{fail: func(int) bool { return down.Load() }}
		r, stop := runRelay(t, dsn, pub, pgtail.Config{Slot: "outage"})
		require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
		add(t, db, ob, true, msg("a", 1), msg("b", 1))
		add(t, db, ob, true, msg("a", 2))
		require.Eventually(t, func() bool { return r.Stats().Failures >= 3 }, waitLong, 5*time.Millisecond)
		require.Equal(t, 3, countRows(t, db, "1=1"), "nothing is cleaned before the broker acknowledged")
		down.Store(false)
		require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 5*time.Millisecond)
		stop()
		require.Equal(t, map[string][]string{"a": {"a-0001", "a-0002"}, "b": {"b-0001"}}, firstSeen(pub.messages()))
	})
}

func TestNew_InvalidConfig(t *testing.T) {
	pub := &recorder{}
	for _, c := range []struct {
		name string
		dsn  string
		cfg  pgtail.Config
		msg  string
	}{
		{"no slot", "postgres://x/y", pgtail.Config{}, `Slot ""`},
		{"bad slot", "postgres://x/y", pgtail.Config{Slot: "Bad-Slot"}, `Slot "Bad-Slot"`},
		{"bad publication", "postgres://x/y", pgtail.Config{Slot: "s", Publication: "a b"}, `Publication "a b"`},
		{"bad table", "postgres://x/y", pgtail.Config{Slot: "s", Table: "x;drop"}, `invalid table name`},
		{"batch", "postgres://x/y", pgtail.Config{Slot: "s", BatchSize: outbox.MaxBatchSize + 1}, `BatchSize`},
		{"negative", "postgres://x/y", pgtail.Config{Slot: "s", Retention: -time.Second}, `negative duration`},
	} {
		_, err := pgtail.New(c.dsn, pub, c.cfg)
		require.ErrorIs(t, err, pgtail.ErrInvalidConfig, c.name)
		require.ErrorContains(t, err, c.msg, c.name)
	}
	_, err := pgtail.New("postgres://x/y", nil, pgtail.Config{Slot: "s"})
	require.Error(t, err)
	_, err = pgtail.New("postgres://x:bad:port/y", pub, pgtail.Config{Slot: "s"})
	require.Error(t, err)
}

func TestRun_Twice(t *testing.T) {
	r, err := pgtail.New("postgres://127.0.0.1:1/none?connect_timeout=1", &recorder{}, fast(pgtail.Config{Slot: "s"}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return r.Stats().Errors > 0 }, waitLong, 5*time.Millisecond)
	require.ErrorIs(t, r.Run(ctx), outbox.ErrRunning)
	cancel()
	require.NoError(t, <-done)
}
