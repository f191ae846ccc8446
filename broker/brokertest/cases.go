package brokertest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
)

// requireSame checks that d carries exactly m (an empty and a nil map or
// payload count as the same).
func requireSame(t *testing.T, m broker.Message, d broker.Delivery) {
	t.Helper()
	require.Equal(t, m.ID, d.ID)
	require.Equal(t, m.Topic, d.Topic)
	require.Equal(t, m.Key, d.Key)
	if len(m.Headers) == 0 {
		require.Empty(t, d.Headers, "headers of %s", m.ID)
	} else {
		require.Equal(t, m.Headers, d.Headers, "headers of %s", m.ID)
	}
	if len(m.Payload) == 0 {
		require.Empty(t, d.Payload, "payload of %s", m.ID)
	} else {
		require.Equal(t, m.Payload, d.Payload, "payload of %s", m.ID)
	}
}

func testRoundTrip(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "orders.roundtrip"
	full := broker.Message{
		ID:    "msg-1",
		Topic: topic,
		Key:   "order-42/ключ",
		Headers: map[string]string{
			broker.HeaderCorrelationID: "corr-1",
			broker.HeaderCausationID:   "cause-1",
			broker.HeaderType:          "OrderCreated",
			"x-lower-case":             "value with spaces, äö and = : ;",
			"X-Empty":                  "",
		},
		Payload: []byte{0, 1, 2, 0xff, '{', '"', '}', 0},
	}
	bare := broker.Message{ID: "msg-2", Topic: topic}
	text := broker.Message{ID: "msg-3", Topic: topic, Key: "k", Payload: []byte(`{"total":12.5}`)}

	l := newRecorder()
	subscribe(t, b, topic, "g", l.handler(nil))
	publish(t, b, full, bare)
	publish(t, b, text)
	waitFor(t, "three deliveries", func() bool { return l.handledAll([]string{"msg-1", "msg-2", "msg-3"}) })

	byID := map[string]broker.Message{full.ID: full, bare.ID: bare, text.ID: text}
	for _, d := range l.deliveries() {
		m, ok := byID[d.ID]
		require.True(t, ok, "unexpected delivery %q", d.ID)
		requireSame(t, m, d)
		require.Equal(t, 1, d.Attempt, "attempt of %s", d.ID)
	}
	require.Equal(t, 3, l.count(), "each message delivered once")

	// An ID identifies a message within its topic: the same ID published
	// on another topic is another message, stored and delivered too.
	copied := full
	copied.Topic = topic + ".copy"
	lc := newRecorder()
	subscribe(t, b, copied.Topic, "g", lc.handler(nil))
	publish(t, b, copied)
	waitFor(t, "the message with the same ID on another topic", func() bool { return lc.handled(copied.ID) })
	requireSame(t, copied, lc.deliveries()[0])
}

func testPublishValidates(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	ctx := ctxT(t)
	require.NoError(t, b.Publish(ctx), "publishing nothing")
	require.Error(t, b.Publish(ctx, broker.Message{Topic: "validate", Payload: []byte("x")}), "missing ID")
	require.Error(t, b.Publish(ctx, broker.Message{ID: "m", Payload: []byte("x")}), "missing Topic")
}

// testPublishBatch checks broker.BatchPublisher, for brokers that have it:
// a batch is stored and delivered whole, and an invalid message fails
// alone, the others of its batch being stored.
func testPublishBatch(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	bp, ok := b.(broker.BatchPublisher)
	if !ok {
		return // the relay falls back to Publish; nothing to check
	}
	ctx := ctxT(t)
	const topic = "orders.batch"
	var msgs []broker.Message
	var ids []string
	for i := range 50 {
		m := broker.Message{ID: fmt.Sprintf("b-%02d", i), Topic: topic, Key: fmt.Sprintf("k%d", i), Payload: []byte("x")}
		msgs = append(msgs, m)
		ids = append(ids, m.ID)
	}
	l := newRecorder()
	subscribe(t, b, topic, "g", l.handler(nil))
	require.Nil(t, bp.PublishBatch(ctx, msgs), "every message stored")
	require.Nil(t, bp.PublishBatch(ctx, nil), "publishing nothing")

	bad := []broker.Message{
		{ID: "b-ok-1", Topic: topic, Key: "a", Payload: []byte("x")},
		{Topic: topic, Key: "b", Payload: []byte("x")}, // no ID
		{ID: "b-ok-2", Topic: topic, Key: "c", Payload: []byte("x")},
	}
	errs := bp.PublishBatch(ctx, bad)
	require.Len(t, errs, 3)
	require.NoError(t, errs[0])
	require.Error(t, errs[1], "the message without ID fails")
	require.NoError(t, errs[2])
	ids = append(ids, "b-ok-1", "b-ok-2")
	waitFor(t, "every stored message", func() bool { return l.handledAll(ids) })
}

// testKeyOrder publishes several keys from concurrent publishers, with a
// handler that fails some first and second attempts, and checks that every
// key's messages are handled one at a time and in order: a message that is
// being redelivered holds back the later messages of its key.
func testKeyOrder(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const (
		topic      = "keyorder"
		publishers = 4
		keysPer    = 2
		perKey     = 40
	)
	var (
		mu         sync.Mutex
		next       = map[string]int{}  // next expected index per key
		inflight   = map[string]bool{} // key being handled
		lastTry    = map[string]int{}  // last Attempt seen per message ID
		violations []string
		failures   int
	)
	violate := func(format string, args ...any) {
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	h := func(_ context.Context, d broker.Delivery) error {
		i, err := strconv.Atoi(string(d.Payload))
		mu.Lock()
		if err != nil {
			violate("bad payload %q", d.Payload)
			mu.Unlock()
			return nil
		}
		if inflight[d.Key] {
			violate("key %s: message %d delivered while another of the key is being handled", d.Key, i)
		}
		if i != next[d.Key] {
			violate("key %s: got message %d (attempt %d), want %d", d.Key, i, d.Attempt, next[d.Key])
		}
		if d.Attempt <= lastTry[d.ID] {
			violate("%s: attempt %d after attempt %d", d.ID, d.Attempt, lastTry[d.ID])
		}
		lastTry[d.ID] = d.Attempt
		inflight[d.Key] = true
		mu.Unlock()

		// Hold the key for a moment so that concurrent deliveries of one
		// key would be seen.
		time.Sleep(100 * time.Microsecond)
		fail := (i%7 == 3 && d.Attempt == 1) || (i%11 == 5 && d.Attempt <= 2)

		mu.Lock()
		defer mu.Unlock()
		inflight[d.Key] = false
		if fail {
			failures++
			return errFail
		}
		if i == next[d.Key] {
			next[d.Key]++
		}
		return nil
	}
	subscribe(t, b, topic, "g", h)

	ctx := ctxT(t)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Interleave this publisher's keys in batches of 1 to 4
			// messages, so that batches mix keys.
			var pending []broker.Message
			size := 1
			for i := range perKey {
				for k := range keysPer {
					pending = append(pending, msg(topic, fmt.Sprintf("key-%d-%d", p, k), i))
				}
				if len(pending) >= size {
					if err := b.Publish(ctx, pending...); err != nil {
						errs <- err
						return
					}
					pending, size = nil, size%4+1
				}
			}
			errs <- b.Publish(ctx, pending...)
		}()
	}
	wg.Wait()
	for range publishers {
		require.NoError(t, <-errs)
	}

	waitFor(t, "every key handled to its end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(violations) > 0 {
			return true
		}
		for p := range publishers {
			for k := range keysPer {
				if next[fmt.Sprintf("key-%d-%d", p, k)] < perKey {
					return false
				}
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, violations)
	require.Positive(t, failures, "the handler failed some deliveries")
}

func testRedelivery(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "redelivery"
	m := broker.Message{
		ID: "again", Topic: topic, Key: "k",
		Headers: map[string]string{broker.HeaderType: "PaymentRequested"},
		Payload: []byte(`{"amount":3}`),
	}
	l := newRecorder()
	subscribe(t, b, topic, "g", l.handler(func(d broker.Delivery) error {
		if d.ID == m.ID && d.Attempt < 3 {
			return errFail
		}
		return nil
	}))
	publish(t, b, m)
	waitFor(t, "the third attempt", func() bool { return l.handled(m.ID) })

	ds := l.deliveries()
	require.Len(t, ds, 3)
	for i, d := range ds {
		requireSame(t, m, d)
		require.Equal(t, i+1, d.Attempt)
	}
	// A later message of the key is handled only after m is done with
	// (per-key order): once it is, m was not delivered again.
	fence := msg(topic, m.Key, 1)
	publish(t, b, fence)
	waitFor(t, "a later message of the key", func() bool { return l.handled(fence.ID) })
	ds = l.deliveries()
	require.Len(t, ds, 4, "no delivery after the handler succeeded")
	require.Equal(t, fence.ID, ds[3].ID)
}

func testGroupSharesWork(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "share"
	l1, l2 := newRecorder(), newRecorder()
	subscribe(t, b, topic, "g", l1.handler(nil))
	subscribe(t, b, topic, "g", l2.handler(nil))

	// Publish batches of messages with distinct keys until both members
	// have handled some: a member may need a moment to get its share (a
	// Kafka group rebalances when the second member joins).
	var sent []string
	handledByEither := func() bool {
		for _, id := range sent {
			if !l1.handled(id) && !l2.handled(id) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(Timeout)
	for batch := 0; l1.count() == 0 || l2.count() == 0; batch++ {
		require.False(t, time.Now().After(deadline), "both members handled messages within %v (got %d and %d)", Timeout, l1.count(), l2.count())
		var msgs []broker.Message
		for j := range 8 {
			msgs = append(msgs, msg(topic, fmt.Sprintf("key-%d-%d", batch, j), j))
		}
		publish(t, b, msgs...)
		sent = append(sent, ids(msgs)...)
		// The next batch once this one is handled (by either member).
		waitFor(t, "a batch handled by one of the members", handledByEither)
	}
	waitFor(t, "every message handled by one of the members", handledByEither)
}

// testMemberJoins adds a member to a group that is busy with a backlog:
// the work moves (a Kafka rebalance) without losing a message.
func testMemberJoins(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "joins"
	var msgs []broker.Message
	for i := range 300 {
		msgs = append(msgs, msg(topic, fmt.Sprintf("k%d", i%50), i))
	}
	publish(t, b, msgs...)
	slow := func(broker.Delivery) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	l1, l2 := newRecorder(), newRecorder()
	subscribe(t, b, topic, "g", l1.handler(slow))
	waitFor(t, "the first member to start", func() bool { return l1.count() >= 20 })
	subscribe(t, b, topic, "g", l2.handler(slow))
	waitFor(t, "every message handled by one of the members", func() bool {
		for _, m := range msgs {
			if !l1.handled(m.ID) && !l2.handled(m.ID) {
				return false
			}
		}
		return true
	})
}

func testGroupsIndependent(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "groups"
	var first []broker.Message
	for i := range 20 {
		first = append(first, msg(topic, fmt.Sprintf("k%d", i%4), i))
	}
	publish(t, b, first...)

	la := newRecorder()
	subscribe(t, b, topic, "a", la.handler(nil))
	waitFor(t, "group a to see every message", func() bool { return la.handledAll(ids(first)) })

	// A group created after group a acknowledged everything still sees
	// every retained message.
	lb := newRecorder()
	subscribe(t, b, topic, "b", lb.handler(nil))
	waitFor(t, "group b to see every message", func() bool { return lb.handledAll(ids(first)) })

	var more []broker.Message
	for i := 20; i < 30; i++ {
		more = append(more, msg(topic, fmt.Sprintf("k%d", i%4), i))
	}
	publish(t, b, more...)
	waitFor(t, "both groups to see the later messages", func() bool {
		return la.handledAll(ids(more)) && lb.handledAll(ids(more))
	})
}

func testStartsFromOldest(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "oldest"
	var msgs []broker.Message
	for i := range 30 {
		msgs = append(msgs, msg(topic, "k", i))
	}
	publish(t, b, msgs[:10]...)
	publish(t, b, msgs[10:]...)

	l := newRecorder()
	subscribe(t, b, topic, "g", l.handler(nil))
	waitFor(t, "every message published before Subscribe", func() bool { return l.handledAll(ids(msgs)) })
	ds := l.deliveries()
	require.Len(t, ds, len(msgs))
	for i, d := range ds {
		requireSame(t, msgs[i], d)
	}
}

func testSubscriptionClose(t *testing.T, open func(t *testing.T) broker.Broker) {
	b := open(t)
	const topic = "subclose"
	started, release := make(chan struct{}), make(chan struct{})
	first := msg(topic, "a", 0)
	l := newRecorder()
	var once sync.Once
	s := subscribe(t, b, topic, "g", func(_ context.Context, d broker.Delivery) error {
		l.add(d, true)
		if d.ID == first.ID {
			once.Do(func() { close(started) })
			<-release
		}
		return nil
	})
	other := newRecorder()
	subscribe(t, b, topic, "other", other.handler(nil))
	publish(t, b, first)

	select {
	case <-started:
	case <-time.After(Timeout):
		t.Fatalf("no delivery within %v", Timeout)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		close(release)
		t.Fatalf("Close returned (%v) while a handler was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(Timeout):
		t.Fatalf("Close did not return within %v after the handler returned", Timeout)
	}
	n := l.count()

	var later []broker.Message
	for i := 1; i <= 5; i++ {
		later = append(later, msg(topic, fmt.Sprintf("k%d", i), i))
	}
	publish(t, b, later...)
	waitFor(t, "the other group to see the later messages", func() bool { return other.handledAll(ids(later)) })
	require.NoError(t, s.Close(), "second Close")

	// Nothing is lost with the closed member: a new member of its group
	// gets the later messages, and the closed one, had it still been
	// consuming, would have taken some of them.
	l2 := newRecorder()
	subscribe(t, b, topic, "g", l2.handler(nil))
	waitFor(t, "a new member to get the later messages", func() bool { return l2.handledAll(ids(later)) })
	require.Equal(t, n, l.count(), "deliveries after Close")
}

func testBrokerClose(t *testing.T, open func(t *testing.T) broker.Broker) {
	const topic = "brokerclose"
	b := open(t)
	l := newRecorder()
	s := subscribe(t, b, topic, "g", l.handler(nil))
	m0 := msg(topic, "k", 0)
	publish(t, b, m0)
	waitFor(t, "the first message", func() bool { return l.handled(m0.ID) })

	require.NoError(t, b.Close())
	ctx := ctxT(t)
	require.ErrorIs(t, b.Publish(ctx, msg(topic, "k", 1)), broker.ErrClosed)
	_, err := b.Subscribe(ctx, topic, "g2", l.handler(nil))
	require.ErrorIs(t, err, broker.ErrClosed)
	require.NoError(t, b.Close(), "second Close")
	require.NoError(t, s.Close(), "closing a subscription of a closed broker")

	// The subscription stopped with its broker: a message published
	// through a new broker reaches only the new member.
	n := l.count()
	b2 := open(t)
	l2 := newRecorder()
	subscribe(t, b2, topic, "g", l2.handler(nil))
	m1 := msg(topic, "k", 1)
	publish(t, b2, m1)
	waitFor(t, "the new member to get the message", func() bool { return l2.handled(m1.ID) })
	require.Equal(t, n, l.count(), "deliveries to a subscription of a closed broker")
}

// testDurable checks that what was published and not acknowledged survives
// closing and reopening the broker, and what was acknowledged stays so.
func testDurable(t *testing.T, open func(t *testing.T) broker.Broker) {
	const topic, idle = "durable", "durable.idle"
	b1 := open(t)
	var msgs, idleMsgs []broker.Message
	for i := range 5 {
		msgs = append(msgs, msg(topic, "k", i))
	}
	for i := range 3 {
		idleMsgs = append(idleMsgs, msg(idle, fmt.Sprintf("k%d", i), i))
	}
	publish(t, b1, msgs...)
	publish(t, b1, idleMsgs...)

	// Acknowledge the first two; fail the third, which holds back the rest.
	l := newRecorder()
	subscribe(t, b1, topic, "g", l.handler(func(d broker.Delivery) error {
		if d.ID == msgs[0].ID || d.ID == msgs[1].ID {
			return nil
		}
		return errFail
	}))
	waitFor(t, "a delivery of the third message", func() bool {
		for _, d := range l.deliveries() {
			if d.ID == msgs[2].ID {
				return true
			}
		}
		return false
	})
	require.NoError(t, b1.Close())

	b2 := open(t)
	l2 := newRecorder()
	subscribe(t, b2, topic, "g", l2.handler(nil))
	waitFor(t, "the unacknowledged messages after reopening", func() bool { return l2.handledAll(ids(msgs[2:])) })
	ds := l2.deliveries()
	require.Len(t, ds, 3, "only the unacknowledged messages, once each")
	for i, d := range ds {
		requireSame(t, msgs[2+i], d)
	}

	l3 := newRecorder()
	subscribe(t, b2, idle, "g", l3.handler(nil))
	waitFor(t, "messages no one consumed before reopening", func() bool { return l3.handledAll(ids(idleMsgs)) })
}
