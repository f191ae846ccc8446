package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
)

// batchRefuser is a broker.BatchPublisher that refuses the messages in
// refused and stores every other message of the same call. Publish is
// never to be called when a broker has PublishBatch.
type batchRefuser struct {
	mu        sync.Mutex
	refused   map[string]bool
	tries     map[string]int // per message, the batches it was refused in
	got       []broker.Message
	plainUsed bool
}

func (p *batchRefuser) Publish(context.Context, ...broker.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plainUsed = true
	return errors.New("Publish called on a BatchPublisher")
}

func (p *batchRefuser) PublishBatch(_ context.Context, msgs []broker.Message) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := make([]error, len(msgs))
	failed := false
	for i, m := range msgs {
		if p.refused[m.ID] {
			p.tries[m.ID]++
			errs[i], failed = errors.New("message refused by the broker"), true
			continue
		}
		p.got = append(p.got, m)
	}
	if !failed {
		return nil
	}
	return errs
}

func (p *batchRefuser) messages() []broker.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]broker.Message(nil), p.got...)
}

// With a broker.BatchPublisher the relay learns which message of a round
// failed: the others are stored once (not published again one by one to
// find the culprit), the failed one is retried up to MaxAttempts and
// given up, and its key's next message waits for that.
func TestRelay_BatchPublisher(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		ob := outbox.Outbox{Dialect: d.Dialect}
		require.NoError(t, ob.Migrate(ctx, db))

		bad := msg("k", 1)
		pub := &batchRefuser{refused: map[string]bool{bad.ID: true}, tries: map[string]int{}}
		var all []broker.Message
		for _, k := range []string{"k", "j", "i"} {
			for n := 1; n <= 3; n++ {
				all = append(all, msg(k, n))
			}
		}
		add(t, db, ob, true, all...)
		r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{MaxAttempts: 3}))
		require.Eventually(t, func() bool { return r.Stats().GivenUp == 1 && countRows(t, db, "1=1") == 0 },
			waitLong, 5*time.Millisecond)
		stop()

		got := pub.messages()
		require.Len(t, got, len(all)-1, "every other message stored once")
		require.Equal(t, map[string][]string{
			"k": {"k-0002", "k-0003"},
			"j": {"j-0001", "j-0002", "j-0003"},
			"i": {"i-0001", "i-0002", "i-0003"},
		}, firstSeen(got), "per-key order; the next of k after k-0001 was given up")
		pub.mu.Lock()
		require.Equal(t, 3, pub.tries[bad.ID])
		require.False(t, pub.plainUsed)
		pub.mu.Unlock()
		dls, err := ob.DeadLetters(ctx, db)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		require.Equal(t, bad.ID, dls[0].Message.ID)
	})
}

// Without MaxAttempts a failed message holds back its key (only), and the
// messages the broker stored alongside it are not published again.
func TestRelay_BatchPublisherRetries(t *testing.T) {
	db := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(context.Background(), db))
	bad := msg("k", 1)
	pub := &batchRefuser{refused: map[string]bool{bad.ID: true}, tries: map[string]int{}}
	add(t, db, ob, true, bad, msg("k", 2), msg("j", 1), msg("j", 2))
	r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{}))
	require.Eventually(t, func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return pub.tries[bad.ID] >= 3 && len(pub.got) == 2
	}, waitLong, 5*time.Millisecond)
	require.Equal(t, map[string][]string{"j": {"j-0001", "j-0002"}}, firstSeen(pub.messages()),
		"key j goes on, each message stored once, while k's first message is retried and k's second waits")

	pub.mu.Lock()
	delete(pub.refused, bad.ID)
	pub.mu.Unlock()
	require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 5*time.Millisecond)
	stop()
	require.Len(t, pub.messages(), 4, "nothing published twice")
	require.Equal(t, map[string][]string{"k": {"k-0001", "k-0002"}, "j": {"j-0001", "j-0002"}}, firstSeen(pub.messages()))
	require.Positive(t, r.Stats().Failures)
}
