package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
)

// choreoShop runs the shop with the choreography pattern on an embedded
// NATS JetStream broker (file storage in a temporary directory).
func choreoShop(t *testing.T, cfg shop.Config) *shop.Shop {
	t.Helper()
	b, err := natsbroker.OpenEmbedded(context.Background(), t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	cfg.Pattern = order.PatternChoreography
	cfg.Broker = b
	return shoptest.MustShop(t, cfg)
}

func TestShopChoreography_Outcomes(t *testing.T) {
	t.Parallel()
	s := choreoShop(t, shop.Config{})
	ctx := context.Background()

	o, err := s.PlaceOrder(ctx, 1, items(1, 2, 2, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.PatternChoreography, o.Pattern)
	assert.Equal(t, order.Completed, o.Status)
	assert.Equal(t, int64(998), available(t, s, 1))
	assert.Equal(t, payment.Charged, paymentStatus(t, s, o.ID))

	// Declined payment: the stock is restored (StockRestored), then the
	// order cancelled.
	o, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "declined")
	assert.Equal(t, int64(50), available(t, s, 3))
	// The refusal is kept, as on the saga and TCC paths.
	assert.Equal(t, payment.Declined, paymentStatus(t, s, o.ID))
	declined, err := s.Payment.Payment(ctx, o.ID)
	require.NoError(t, err)
	assert.Contains(t, declined.Reason, "not allowed to pay")

	// Not enough stock: payment never hears of it.
	o, err = s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient stock")
	assert.Empty(t, paymentStatus(t, s, o.ID))

	// Idempotent replay.
	first, err := s.PlaceOrder(ctx, 1, items(2, 1), "ch-key-1", true)
	require.NoError(t, err)
	again, err := s.PlaceOrder(ctx, 1, items(2, 1), "ch-key-1", true)
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)

	rep := settle(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 2, cancelled: 2}, *rep)
	assert.Equal(t, int64(400+200), account(t, s, 1).Spent)
}

// TestShopChoreography_Faults delivers every event through consumers that
// fail, delay and lose acknowledgements: redeliveries must have no second
// effect, and every order must end consistent.
func TestShopChoreography_Faults(t *testing.T) {
	t.Parallel()
	fc := func(seed int64) faults.Config {
		return faults.Config{Rate: 0.3, Delay: 50 * time.Millisecond, Seed: seed}
	}
	s := choreoShop(t, shop.Config{OrderFaults: fc(1), InventoryFaults: fc(2), PaymentFaults: fc(3)})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				user := []int64{1, 2, 3, 4}[(w+i)%4]
				_, err := s.PlaceOrder(ctx, user, items(int64(1+(w+i)%4), 1), fmt.Sprintf("f-%d-%d", w, i), false)
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	rep := settle(t, s, 60*time.Second)
	assert.Equal(t, 80, rep.completed+rep.cancelled)
	assert.Positive(t, rep.completed)
	assert.Positive(t, rep.cancelled)
	st := s.FaultStats()
	assert.Positive(t, st.Inventory.Lose, "lost acknowledgements were injected")
	assert.Positive(t, st.Payment.Fail)
}

// TestShopChoreography_PoisonEventDeadLettered publishes a malformed
// OrderPlaced: the inventory dead-letters it at once (retrying cannot fix
// it), the verifier reports it, the HTTP API lists it, a replay still
// fails, and a discard clears it.
func TestShopChoreography_PoisonEventDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	defer b.Close()
	s := shoptest.MustShop(t, shop.Config{Pattern: order.PatternChoreography, Broker: b})

	poison, err := events.New(events.OrderPlaced, "order-999", "test", "", "not an order")
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, poison))

	var list []struct {
		ID    string `json:"id"`
		Topic string `json:"topic"`
		Error string `json:"error"`
	}
	require.Eventually(t, func() bool {
		code, body := shoptest.Get(t, s.InventoryURL()+"/events/dead-letters")
		require.Equal(t, http.StatusOK, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list) == 1
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, poison.ID, list[0].ID)
	assert.Equal(t, events.OrderPlaced, list[0].Topic)
	assert.Contains(t, list[0].Error, "malformed payload")
	dead := `dtx_dead_letters{service="inventory",source="inbox"}`
	assert.Equal(t, 1.0, scrape(t, s.InventoryURL()+"/metrics", dead))

	rep, err := s.Verify(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Violations, 1)
	assert.Contains(t, rep.Violations[0], "dead-lettered")

	post := func(action, id string) int {
		resp, err := http.Post(s.InventoryURL()+"/events/dead-letters/"+action+"?id="+url.QueryEscape(id), "application/json", nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnprocessableEntity, post("replay", poison.ID), "still malformed")
	assert.Equal(t, http.StatusNotFound, post("discard", "nope"))
	assert.Equal(t, http.StatusNoContent, post("discard", poison.ID))
	assert.Equal(t, 0.0, scrape(t, s.InventoryURL()+"/metrics", dead))
	rep, err = s.Verify(ctx)
	require.NoError(t, err)
	assert.Empty(t, rep.Violations)
}

// TestShopChoreography_RestartWithoutCoordinator restarts a shop whose
// saga order is still PENDING (its coordinator was unreachable) with the
// choreography pattern and no coordinator: the resubmitter and a replayed
// placement must leave the saga order PENDING, not crash the process.
func TestShopChoreography_RestartWithoutCoordinator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := shop.Start(ctx, shop.Config{Dir: dir, CoordinatorURL: "http://127.0.0.1:1", ResubmitInterval: time.Hour, Logger: shoptest.Logger()})
	require.NoError(t, err)
	o, err := s.PlaceOrder(ctx, 1, items(1, 1), "k-saga", false)
	require.NoError(t, err)
	require.Equal(t, order.Pending, o.Status)
	require.NoError(t, s.Close(ctx))

	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	defer b.Close()
	log, logged := shoptest.CountingLogger()
	s, err = shop.Start(ctx, shop.Config{Dir: dir, Pattern: order.PatternChoreography, Broker: b,
		ResubmitInterval: 20 * time.Millisecond, ResubmitAfter: time.Millisecond, Logger: log})
	require.NoError(t, err)
	defer s.Close(ctx)
	// Several resubmission rounds, each finding the saga order and no
	// coordinator to submit it to.
	require.Eventually(t, func() bool { return logged.Count("resubmit pending orders") >= 3 }, 20*time.Second, time.Millisecond)
	again, err := s.PlaceOrder(ctx, 1, items(1, 1), "k-saga", false)
	require.NoError(t, err)
	assert.Equal(t, o.ID, again.ID)
	assert.Equal(t, order.Pending, again.Status)
	// New orders flow through the events.
	n, err := s.PlaceOrder(ctx, 1, items(2, 1), "k-choreo", true)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, n.Status)
}

// TestShopChoreography_DeadLetterRoutesDuringStart asks for the dead
// letters while the shop starts: the routes must answer (or pass through)
// without racing the setup of the consumers (run with -race).
func TestShopChoreography_DeadLetterRoutesDuringStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	var stop atomic.Bool
	var tried, answered atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			tried.Add(1)
			if resp, err := http.Get("http://" + addr + "/events/dead-letters"); err == nil {
				resp.Body.Close()
				answered.Add(1)
			}
		}
	}()
	// Asking already when the start begins, and still once it is done.
	require.Eventually(t, func() bool { return tried.Load() > 0 }, 10*time.Second, time.Millisecond)
	s, err := shop.Start(ctx, shop.Config{Dir: t.TempDir(), Pattern: order.PatternChoreography, Broker: b, InventoryAddr: addr, Logger: shoptest.Logger()})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return answered.Load() > 0 }, 10*time.Second, time.Millisecond)
	stop.Store(true)
	<-done
	code, body := shoptest.Get(t, "http://"+addr+"/events/dead-letters")
	assert.Equal(t, http.StatusOK, code, body)
	s.Close(ctx)
}
