package shop_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker/kafkabroker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// TestShopChoreography_ConsumerRetryThenDeadLetterAcrossRestart (F24) on
// Kafka, whose consumer numbers attempts from 1 again after a restart: the
// payment's charge of one user's orders fails (a database trigger). The
// first shop retries it (generous policy) a few times and stops; the
// second runs the seeds' policy (3 attempts) with a retry delay of an hour,
// so the dead letter can only come at once, from the failures counted
// before the restart. The partition then moves on: a later order
// completes.
func TestShopChoreography_ConsumerRetryThenDeadLetterAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	kb, err := kafkabroker.Connect(ctx, cluster.ListenAddrs(), kafkabroker.Config{
		Partitions: 1, // every order on one partition: a stall would show
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond, CommitInterval: 100 * time.Millisecond,
		ClientOptions: []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { kb.Close() })
	dir := t.TempDir()
	coord := shoptest.MustCoordinator(t)
	start := func(attempts int, delay time.Duration) *shop.Shop {
		return shoptest.MustShop(t, shop.Config{
			Dir: dir, Coordinator: coord, Pattern: order.PatternChoreography, Broker: kb,
			ConsumerMaxAttempts: attempts, ConsumerRetryDelay: delay,
		})
	}

	s1 := start(100, 50*time.Millisecond)
	_, err = s1.PaymentDB().Exec(`CREATE TRIGGER charge_fails BEFORE INSERT ON payments WHEN NEW.user_id = 4
BEGIN SELECT RAISE(ABORT, 'payment database unavailable'); END`)
	require.NoError(t, err)
	stuck, err := s1.PlaceOrder(ctx, 4, items(1, 1), "", false)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		err := s1.PaymentDB().QueryRow(`SELECT coalesce(max(attempts), 0) FROM payment_inbox_attempts`).Scan(&n)
		require.NoError(t, err)
		return n >= 2
	}, 30*time.Second, 10*time.Millisecond, "failures are counted in the payment's database")
	require.NoError(t, s1.Close(ctx))

	s2 := start(3, time.Hour)
	var list []struct {
		Topic    string `json:"topic"`
		Error    string `json:"error"`
		Attempts int    `json:"attempts"`
	}
	require.Eventually(t, func() bool {
		code, body := shoptest.Get(t, s2.PaymentURL()+"/events/dead-letters")
		require.Equal(t, http.StatusOK, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list) == 1
	}, 30*time.Second, 20*time.Millisecond, "dead-lettered on the first failure after the restart")
	assert.Equal(t, events.StockDeducted, list[0].Topic)
	assert.GreaterOrEqual(t, list[0].Attempts, 3)
	assert.Contains(t, list[0].Error, "payment database unavailable")

	o, err := s2.PlaceOrder(ctx, 1, items(2, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, o.Status, "the partition moved on")
	got, err := s2.Orders.Get(ctx, stuck.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Pending, got.Status, "its order waits for an operator's replay")
}
