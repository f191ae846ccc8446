package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
	"github.com/stretchr/testify/require"
)

// refuser is a broker that refuses every call carrying one of its refused
// ids (storing nothing of it) and stores the others.
type refuser struct {
	mu      sync.Mutex
	refused map[string]bool
	tries   map[string]int // failed calls that carried the id alone
	got     []broker.Message
	// triesAtPublish[id] is tries[refused id] when id was stored.
	triesAtPublish map[string]int
	watch          string
}

func newRefuser(watch string, refused ...string) *refuser {
	p := &refuser{refused: map[string]bool{}, tries: map[string]int{}, triesAtPublish: map[string]int{}, watch: watch}
	for _, id := range refused {
		p.refused[id] = true
	}
	return p
}

func (p *refuser) Publish(_ context.Context, msgs ...broker.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if p.refused[m.ID] {
			if len(msgs) == 1 {
				p.tries[m.ID]++
			}
			return errors.New("message refused by the broker")
		}
	}
	for _, m := range msgs {
		p.got = append(p.got, m)
		p.triesAtPublish[m.ID] = p.tries[p.watch]
	}
	return nil
}

func (p *refuser) allow(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.refused, id)
}

func (p *refuser) published(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.triesAtPublish[id]
	return ok
}

// TestRelay_GiveUp: a message the broker keeps refusing is retried
// MaxAttempts times, then FAILED into the dead letters with its last
// error, and the messages behind it, of its key too, go on; a dead letter
// can be replayed (published once the broker takes it) or discarded.
func TestRelay_GiveUp(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		ob := outbox.Outbox{Dialect: d.Dialect}
		require.NoError(t, ob.Migrate(ctx, db))
		require.NoError(t, ob.Migrate(ctx, db), "Migrate is idempotent")

		bad, next, other := msg("k", 1), msg("k", 2), msg("j", 1)
		pub := newRefuser(bad.ID, bad.ID)
		add(t, db, ob, true, bad, next, other)
		r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{MaxAttempts: 3}))

		var dls []outbox.DeadLetter
		require.Eventually(t, func() bool {
			var err error
			dls, err = ob.DeadLetters(ctx, db)
			require.NoError(t, err)
			return len(dls) == 1 && pub.published(next.ID) && pub.published(other.ID) &&
				countRows(t, db, "published_at IS NULL") == 0
		}, waitLong, 5*time.Millisecond, "the failed row left the outbox, the others were published")
		dl := dls[0]
		require.Equal(t, bad, dl.Message)
		require.Equal(t, 3, dl.Attempts)
		require.Contains(t, dl.Error, "message refused by the broker")
		require.WithinDuration(t, time.Now(), dl.Failed, time.Minute)
		require.False(t, dl.Created.After(dl.Failed))
		pub.mu.Lock()
		require.Equal(t, 3, pub.tries[bad.ID], "tried exactly MaxAttempts times on its own")
		require.Equal(t, 3, pub.triesAtPublish[next.ID], "the next message of its key waits until it is given up")
		pub.mu.Unlock()
		require.Equal(t, uint64(1), r.Stats().GivenUp)

		// Replayed while still refused: FAILED again, under a new seq.
		require.NoError(t, ob.Replay(ctx, db, dl.Seq))
		r.Notify()
		require.ErrorIs(t, ob.Replay(ctx, db, dl.Seq), outbox.ErrNotFound)
		require.Eventually(t, func() bool {
			dls, _ = ob.DeadLetters(ctx, db)
			return len(dls) == 1 && dls[0].Seq != dl.Seq
		}, waitLong, 5*time.Millisecond)
		require.Equal(t, 3, dls[0].Attempts, "a replay starts counting again")

		// Replayed once the broker takes it: published.
		pub.allow(bad.ID)
		require.NoError(t, ob.Replay(ctx, db, dls[0].Seq))
		r.Notify()
		require.Eventually(t, func() bool {
			return pub.published(bad.ID) && countRows(t, db, "published_at IS NULL") == 0
		}, waitLong, 5*time.Millisecond)
		dls, err := ob.DeadLetters(ctx, db)
		require.NoError(t, err)
		require.Empty(t, dls)
		stop()

		// Discard drops one for good.
		pub2 := newRefuser("x-0001", "x-0001")
		add(t, db, ob, true, msg("x", 1))
		_, stop2 := runRelay(t, db, ob, pub2, fast(outbox.RelayConfig{MaxAttempts: 1}))
		require.Eventually(t, func() bool {
			dls, _ = ob.DeadLetters(ctx, db)
			return len(dls) == 1
		}, waitLong, 5*time.Millisecond)
		stop2()
		require.Equal(t, 1, dls[0].Attempts)
		require.NoError(t, ob.Discard(ctx, db, dls[0].Seq))
		require.ErrorIs(t, ob.Discard(ctx, db, dls[0].Seq), outbox.ErrNotFound)
		dls, err = ob.DeadLetters(ctx, db)
		require.NoError(t, err)
		require.Empty(t, dls)
		require.Zero(t, countRows(t, db, "1 = 1"))
	})
}

// TestRelay_GiveUpCountSurvivesRestart: failures counted by one relay
// are carried on by the next (a restart, or a standby taking the lease).
func TestRelay_GiveUpCountSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	db := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(ctx, db))
	bad := msg("k", 1)
	add(t, db, ob, true, bad)

	pub := newRefuser(bad.ID, bad.ID)
	r1, stop1 := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{MaxAttempts: 20}))
	require.Eventually(t, func() bool { return r1.Stats().Failures >= 2 }, waitLong, time.Millisecond)
	stop1()
	var before int
	require.NoError(t, db.QueryRow("SELECT attempts FROM "+outbox.DefaultTable+"_attempts").Scan(&before))
	require.GreaterOrEqual(t, before, 1)
	require.Less(t, before, 20)

	r2, _ := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{MaxAttempts: 20}))
	require.Eventually(t, func() bool { return r2.Stats().GivenUp == 1 }, waitLong, time.Millisecond)
	require.Equal(t, uint64(20-before), r2.Stats().Failures, "the second relay went on from the first's count")
	dls, err := ob.DeadLetters(ctx, db)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.Equal(t, 20, dls[0].Attempts)
}

// TestRelay_NoGiveUpByDefault: without MaxAttempts a refused message stays
// in the outbox, however often it fails.
func TestRelay_NoGiveUpByDefault(t *testing.T) {
	ctx := context.Background()
	db := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(ctx, db))
	add(t, db, ob, true, msg("k", 1))
	r, stop := runRelay(t, db, ob, newRefuser("", "k-0001"), fast(outbox.RelayConfig{}))
	require.Eventually(t, func() bool { return r.Stats().Failures >= 10 }, waitLong, time.Millisecond)
	stop()
	dls, err := ob.DeadLetters(ctx, db)
	require.NoError(t, err)
	require.Empty(t, dls)
	require.Equal(t, 1, countRows(t, db, "published_at IS NULL"))
	require.Zero(t, r.Stats().GivenUp)
}
