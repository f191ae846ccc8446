package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// asyncShop runs the shop with the saga-async pattern: a coordinator whose
// branch calls go as commands through an embedded NATS JetStream, and the
// services answering them from their topics.
func asyncShop(t *testing.T, cfg shop.Config) (*shop.Shop, *client.Client, *brokertransport.Transport) {
	t.Helper()
	b, err := natsbroker.OpenEmbedded(context.Background(), t.TempDir(), natsbroker.Config{
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	coord, tr := shoptest.MustAsyncCoordinator(t, b)
	cfg.Pattern = order.PatternSagaAsync
	cfg.Broker = b
	cfg.Coordinator = coord
	return shoptest.MustShop(t, cfg), coord, tr
}

func TestShopSagaAsync_Outcomes(t *testing.T) {
	t.Parallel()
	s, coord, tr := asyncShop(t, shop.Config{})
	// Completed, declined payment (stock restored by the compensation),
	// insufficient stock, insufficient balance, idempotent replay.
	checkOutcomes(t, s)

	orders, err := s.Orders.List(context.Background(), "")
	require.NoError(t, err)
	require.NotEmpty(t, orders)
	for _, o := range orders {
		assert.Equal(t, order.PatternSagaAsync, o.Pattern)
	}
	// The coordinator ran the saga with broker steps only, and every call
	// was answered over the broker.
	d, err := coord.Get(context.Background(), orders[0].GID)
	require.NoError(t, err)
	var spec saga.Spec
	require.NoError(t, json.Unmarshal(d.Spec, &spec))
	var urls []string
	for _, st := range spec.Steps {
		for _, u := range []string{st.Action, st.Compensate} {
			if u != "" {
				urls = append(urls, u)
			}
		}
	}
	assert.Equal(t, []string{"broker://orders-saga-cancel", "broker://inventory-deduct", "broker://inventory-deduct-cancel",
		"broker://payment-charge", "broker://payment-charge-cancel", "broker://orders-saga-complete"}, urls)
	st := tr.Stats()
	// 2 completed orders x 3 actions, plus the cancelled ones' actions and
	// compensations.
	assert.GreaterOrEqual(t, st.Replies, int64(12))
	// Every call ended with its reply or, when the machine was too busy
	// to answer within the branch timeout, timed out (and was retried: the
	// orders all finished). How many time out depends on the machine, so
	// no count of them is asserted.
	assert.Equal(t, st.Calls, st.Replies+st.Timeouts, "no call went unanswered: %+v", st)
}

func TestStart_SagaAsyncNeedsBroker(t *testing.T) {
	t.Parallel()
	_, err := shop.Start(context.Background(), shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, Pattern: order.PatternSagaAsync})
	require.ErrorContains(t, err, "needs Config.Broker")
}

// TestShopSagaAsync_Faults injects faults into the command deliveries
// (refused, delayed past the branch timeout, handled twice) with a short
// branch timeout: calls time out, retries send new commands while old ones
// are still queued, late replies are dropped; every order must still end
// consistent.
func TestShopSagaAsync_Faults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	fc := func(seed int64) faults.Config {
		return faults.Config{Rate: 0.3, Kinds: faults.AllKinds, Delay: time.Second, Seed: seed}
	}
	s, _, tr := asyncShop(t, shop.Config{
		OrderFaults: fc(1), InventoryFaults: fc(2), PaymentFaults: fc(3),
		// Shorter than the longest delay, so some commands are answered
		// late, and long enough that a command without a delay is
		// answered in time on a busy machine under -race (at 250 ms most
		// calls timed out there, and the orders took minutes to settle).
		BranchTimeout: 600 * time.Millisecond,
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			user := []int64{1, 1, 4, 2, 3}[i%5]
			_, errs[i] = s.PlaceOrder(ctx, user, items(int64(1+i%4), 1+int64(i%3)), fmt.Sprintf("k%d", i), false)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	rep := settle(t, s, 3*time.Minute) // generous: the embedded NATS server shares a busy machine with -race
	assert.Equal(t, 40, rep.completed+rep.cancelled)
	assert.Positive(t, rep.completed)
	assert.Positive(t, rep.cancelled)
	fst := s.FaultStats()
	st := tr.Stats()
	t.Logf("faults: %+v; transport: %+v; %d completed, %d cancelled", fst, st, rep.completed, rep.cancelled)
	assert.Positive(t, fst.Inventory.Delay+fst.Payment.Delay, "delays were injected")
	assert.Positive(t, fst.Inventory.Lose+fst.Payment.Lose, "commands were handled twice")
	assert.Positive(t, st.Timeouts, "some calls timed out")
	cancelled, err := s.Orders.List(ctx, order.Cancelled)
	require.NoError(t, err)
	for _, o := range cancelled {
		assert.False(t, strings.Contains(o.Reason, "timed out"), "order %d: the saga timed out: %s", o.ID, o.Reason)
	}
}
