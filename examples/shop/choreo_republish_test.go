package shop_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/kafkabroker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// TestShopChoreography_RepublishedEvents publishes captured events of the
// choreographed flow again under new message ids, with their old payloads
// and headers, at random and in any order, while orders flow and after:
// each service must react once per order and event type, so no
// re-published event may refuse, cancel or complete anything again. The
// shop's invariants and the recorded flow of every order (its closing
// event matches the order's status, and it has one kind of closing event)
// must hold, on NATS and on Kafka.
func TestShopChoreography_RepublishedEvents(t *testing.T) {
	t.Parallel()
	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		b, err := natsbroker.OpenEmbedded(context.Background(), t.TempDir(), natsbroker.Config{PollWait: 200 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		testRepublish(t, b)
	})
	t.Run("kafka", func(t *testing.T) {
		t.Parallel()
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		b, err := kafkabroker.Connect(context.Background(), c.ListenAddrs(), kafkabroker.Config{
			RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, CommitInterval: 200 * time.Millisecond,
			ClientOptions: []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond)},
		})
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		testRepublish(t, b)
	})
}

func testRepublish(t *testing.T, b broker.Broker) {
	const orders, republishes = 40, 1000
	ctx := context.Background()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	// The flow view, as the flows API reads it.
	fdb, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "flows.db"), 1)
	require.NoError(t, err)
	t.Cleanup(func() { fdb.Close() })
	flows := flow.NewStore(fdb)
	require.NoError(t, flows.Migrate(ctx))
	subs, err := flow.Record(ctx, b, flows, events.Topics...)
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})

	// Capture the original events (not our copies) to publish again.
	var mu sync.Mutex
	var captured []broker.Message
	sent := map[string]int{} // copies published, by topic
	for _, topic := range events.Topics {
		sub, err := b.Subscribe(ctx, topic, "test-capture", func(ctx context.Context, d broker.Delivery) error {
			if !strings.HasPrefix(d.ID, "again-") {
				mu.Lock()
				captured = append(captured, d.Message)
				mu.Unlock()
			}
			return nil
		})
		require.NoError(t, err)
		t.Cleanup(func() { sub.Close() })
	}

	s := shoptest.MustShop(t, shop.Config{Pattern: order.PatternChoreography, Broker: b})
	again := func(n int) {
		for i := range n {
			mu.Lock()
			if len(captured) == 0 {
				mu.Unlock()
				return
			}
			m := captured[rng.IntN(len(captured))]
			mu.Unlock()
			m.ID = fmt.Sprintf("again-%d-%d", n, i) + "-" + m.ID
			m.Headers = maps.Clone(m.Headers)
			require.NoError(t, b.Publish(ctx, m))
			mu.Lock()
			sent[m.Topic]++
			mu.Unlock()
		}
	}

	// Orders of every outcome, re-publishing while they flow.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range orders {
			var err error
			switch i % 4 {
			case 0, 1:
				_, err = s.PlaceOrder(ctx, 1, items(int64(1+i%3), 1), "", false)
			case 2:
				_, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 1), "", false)
			case 3:
				_, err = s.PlaceOrder(ctx, 3, items(4, 6), "", false) // more than the stock
			}
			assert.NoError(t, err)
		}
	}()
	again(republishes / 2)
	wg.Wait()
	rep := settle(t, s, 60*time.Second)
	require.Equal(t, orders, rep.completed+rep.cancelled)
	require.Positive(t, rep.completed)
	require.Positive(t, rep.cancelled)

	// The rest of the copies, once every kind of event exists; then wait
	// until each service has processed every copy sent to it (its inbox
	// holds their ids, committed with whatever they did).
	again(republishes - republishes/2)
	consumers := []struct {
		db     *sql.DB
		table  string
		topics []string
	}{
		{s.OrderDB(), "order_inbox", []string{events.PaymentCharged, events.StockFailed, events.StockRestored}},
		{s.InventoryDB(), "inventory_inbox", []string{events.OrderPlaced, events.PaymentFailed}},
		{s.PaymentDB(), "payment_inbox", []string{events.StockDeducted}},
	}
	for _, c := range consumers {
		mu.Lock()
		want := 0
		for _, topic := range c.topics {
			want += sent[topic]
		}
		mu.Unlock()
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, c.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+c.table+` WHERE msg_id LIKE 'again-%'`).Scan(&n))
			return n == want
		}, 60*time.Second, 50*time.Millisecond, "%s processed all %d copies sent to it", c.table, want)
	}
	rep = settle(t, s, 60*time.Second)
	require.Equal(t, orders, rep.completed+rep.cancelled)

	all, err := s.Orders.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, orders)
	for _, o := range all {
		require.Eventually(t, func() bool {
			tl, err := flows.Timeline(ctx, o.GID)
			require.NoError(t, err)
			closing := map[string]bool{}
			for _, e := range tl {
				if e.Type == events.OrderCompleted || e.Type == events.OrderCancelled {
					closing[e.Type] = true
				}
			}
			want := events.OrderCompleted
			if o.Status == order.Cancelled {
				want = events.OrderCancelled
			}
			return len(closing) == 1 && closing[want]
		}, 30*time.Second, 50*time.Millisecond, "order %d (%s): its flow closes once, as %s", o.ID, o.GID, o.Status)
	}
}
