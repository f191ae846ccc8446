package pgtail_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/outbox/pgtail"
)

// Environment of the relay child process (see TestMain).
const (
	envChildDSN  = "DTX_PGTAIL_CHILD_DSN"
	envChildNATS = "DTX_PGTAIL_CHILD_NATS"
	childSlot    = "killed"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChildDSN) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild is the child process of TestRelaySurvivesSIGKILL: a tailing
// relay publishing to the parent's NATS server until it is killed.
func runChild() int {
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	brk, err := natsbroker.Connect(ctx, os.Getenv(envChildNATS), natsbroker.Config{Logger: discard})
	if err != nil {
		return fail(err)
	}
	r, err := pgtail.New(os.Getenv(envChildDSN), brk, fast(pgtail.Config{Slot: childSlot, BatchSize: 20}))
	if err != nil {
		return fail(err)
	}
	if err := r.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// consumer records what a consumer group receives.
type consumer struct {
	mu    sync.Mutex
	first map[string][]string // per key, ids in the order first received
	seen  map[string]bool
	total int
}

func (c *consumer) handle(_ context.Context, d broker.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if !c.seen[d.ID] {
		c.seen[d.ID] = true
		c.first[d.Key] = append(c.first[d.Key], d.ID)
	}
	return nil
}

func (c *consumer) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// A tailing relay process is killed with SIGKILL twice while it publishes
// a few thousand messages that are being written meanwhile, and started
// again: a consumer receives every message, and per key the first
// deliveries come in commit order.
func TestRelaySurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartWith(t, logical)
	dsn, db, ob := newDB(t, srv)
	ctx := context.Background()

	brk, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{Listen: "127.0.0.1:0", Logger: discard})
	require.NoError(t, err)
	t.Cleanup(func() { brk.Close() })
	cons := &consumer{first: map[string][]string{}, seen: map[string]bool{}}
	sub, err := brk.Subscribe(ctx, "orders", "g", cons.handle)
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })

	start := func() (*exec.Cmd, chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildDSN+"="+dsn, envChildNATS+"="+brk.ClientURL())
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd, exited
	}

	const perKey = 150
	ks := keys(20) // 3000 messages
	wrote := make(chan map[string][]string, 1)
	go func() { wrote <- writeKeys(t, db, ob, ks, perKey) }()

	for _, killAt := range []int{400, 1500} {
		cmd, exited := start()
		require.Eventually(t, func() bool { return cons.distinct() >= killAt }, 2*time.Minute, time.Millisecond)
		require.NoError(t, cmd.Process.Kill()) // SIGKILL
		require.Error(t, <-exited, "the child was still running when killed")
	}
	require.Less(t, cons.distinct(), len(ks)*perKey, "killed mid-stream")
	start()
	want := <-wrote
	require.Eventually(t, func() bool { return cons.distinct() == len(ks)*perKey }, 2*time.Minute, 5*time.Millisecond,
		"every message received at least once")
	cons.mu.Lock()
	defer cons.mu.Unlock()
	require.Equal(t, want, cons.first, "per key, first deliveries in commit order")
	t.Logf("%d deliveries for %d messages", cons.total, len(cons.seen))
}

// PostgreSQL is restarted while the relay publishes: it reconnects and
// loses nothing; per key the first publications keep the commit order.
func TestRelaySurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartWith(t, logical)
	dsn, db, ob := newDB(t, srv)
	// The broker is down while the messages are written, so that the
	// relay has them all to publish, slowly, when PostgreSQL restarts.
	var down atomic.Bool
	down.Store(true)
	pub := &recorder{delay: 5 * time.Millisecond, fail: func(int) bool { return down.Load() }}
	r, stop := runRelay(t, dsn, pub, pgtail.Config{Slot: "restarted", BatchSize: 5})
	require.Eventually(t, func() bool { return r.Stats().Streaming }, waitLong, 5*time.Millisecond)
	want := writeKeys(t, db, ob, keys(4), 100)
	down.Store(false)
	require.Eventually(t, func() bool { return pub.distinct() >= 100 }, waitLong, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A walsender streams the log to its end before the server shuts
	// down; failing meanwhile leaves that part unconfirmed.
	down.Store(true)
	require.NoError(t, srv.Restart(ctx))
	require.Less(t, pub.distinct(), 400, "restarted mid-stream")
	down.Store(false)

	// The test's own pool holds connections the restart closed.
	db2, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db2.Close() })
	more := writeKeysFrom(t, db2, ob, keys(4), 100, 25)
	for k, ids := range more {
		want[k] = append(want[k], ids...)
	}
	require.Eventually(t, func() bool { return pub.distinct() == 500 }, waitLong, 5*time.Millisecond)
	require.Eventually(t, func() bool { return countRows(t, db2, "1=1") == 0 }, waitLong, 10*time.Millisecond)
	stop()
	require.Positive(t, r.Stats().Errors, "the relay lost its connection and reconnected")
	require.Equal(t, want, firstSeen(pub.messages()))
	require.Zero(t, pub.overlaps.Load())
}
