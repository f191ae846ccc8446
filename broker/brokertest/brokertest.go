// Package brokertest is the conformance suite every broker.Broker adapter
// must pass. It checks each guarantee written in package broker: publish and
// deliver, the round trip of every Message field, per-key order under
// concurrency and handler errors, redelivery with a growing Attempt, work
// sharing inside a group and independence between groups, starting from the
// oldest retained message, closing a subscription and a broker, and
// durability across closing and reopening the broker.
//
// Every wait is bounded (see Timeout) and the suite talks to nothing but the
// broker it is given.
package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
)

// Setup prepares a fresh, empty backend for one test and returns a function
// that opens a Broker on it. The suite closes every Broker it opens, and
// opens a second one only after closing the first. A Broker opened after an
// earlier one was closed must see the same stored messages and consumer
// group positions: reopen the same directory, or reconnect to the same
// server.
type Setup func(t *testing.T) (open func(t *testing.T) broker.Broker)

// Timeout bounds every wait of the suite for something to happen.
const Timeout = 20 * time.Second

// Quiet is how long the suite watches for deliveries that must not happen.
const Quiet = time.Second

// Run runs the conformance suite; its subtests run in parallel, each on its
// own backend from setup.
func Run(t *testing.T, setup Setup) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) broker.Broker)
	}{
		{"RoundTrip", testRoundTrip},
		{"PublishValidates", testPublishValidates},
		{"PublishBatch", testPublishBatch},
		{"KeyOrder", testKeyOrder},
		{"Redelivery", testRedelivery},
		{"GroupSharesWork", testGroupSharesWork},
		{"MemberJoins", testMemberJoins},
		{"GroupsIndependent", testGroupsIndependent},
		{"StartsFromOldest", testStartsFromOldest},
		{"SubscriptionClose", testSubscriptionClose},
		{"BrokerClose", testBrokerClose},
		{"Durable", testDurable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			open := setup(t)
			tc.fn(t, func(t *testing.T) broker.Broker {
				t.Helper()
				b := open(t)
				t.Cleanup(func() { _ = b.Close() })
				return b
			})
		})
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or Timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventuallyf(t, cond, Timeout, 5*time.Millisecond, "timed out after %v waiting for %s", Timeout, what)
}

func subscribe(t *testing.T, b broker.Broker, topic, group string, h broker.Handler) broker.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t), topic, group, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func publish(t *testing.T, b broker.Broker, msgs ...broker.Message) {
	t.Helper()
	require.NoError(t, b.Publish(ctxT(t), msgs...))
}

// recorder records deliveries; it is safe for concurrent handlers.
type recorder struct {
	mu  sync.Mutex
	all []broker.Delivery
	ok  map[string]int // handled successfully, by Message.ID
}

func newRecorder() *recorder { return &recorder{ok: map[string]int{}} }

func (l *recorder) add(d broker.Delivery, succeeded bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, d)
	if succeeded {
		l.ok[d.ID]++
	}
}

// handler records every delivery and returns fail's verdict (nil: success).
func (l *recorder) handler(fail func(d broker.Delivery) error) broker.Handler {
	return func(_ context.Context, d broker.Delivery) error {
		var err error
		if fail != nil {
			err = fail(d)
		}
		l.add(d, err == nil)
		return err
	}
}

func (l *recorder) deliveries() []broker.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]broker.Delivery(nil), l.all...)
}

func (l *recorder) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *recorder) handled(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok[id] > 0
}

func (l *recorder) handledAll(ids []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if l.ok[id] == 0 {
			return false
		}
	}
	return true
}

func msg(topic, key string, i int) broker.Message {
	return broker.Message{
		ID:      fmt.Sprintf("%s-%s-%d", topic, key, i),
		Topic:   topic,
		Key:     key,
		Payload: []byte(fmt.Sprintf("%d", i)),
	}
}

func ids(msgs []broker.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

var errFail = fmt.Errorf("brokertest: handler failure")
