package shop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// refusingBroker refuses to publish one topic while refuse is set.
type refusingBroker struct {
	broker.Broker
	topic  string
	refuse atomic.Bool
}

func (b *refusingBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	for _, m := range msgs {
		if b.refuse.Load() && m.Topic == b.topic {
			return errors.New("topic " + m.Topic + " refused")
		}
	}
	return b.Broker.Publish(ctx, msgs...)
}

// TestShopChoreography_OutboxGiveUp (F21): the inventory's StockDeducted
// is refused by the broker; after OutboxMaxAttempts the relay gives it up,
// the row is FAILED in the outbox's dead letters (listed over HTTP,
// reported by the verifier), and a replay once the broker takes it again
// completes the order.
func TestShopChoreography_OutboxGiveUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nb, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { nb.Close() })
	b := &refusingBroker{Broker: nb, topic: events.StockDeducted}
	b.refuse.Store(true)
	s := shoptest.MustShop(t, shop.Config{Pattern: order.PatternChoreography, Broker: b, OutboxMaxAttempts: 2})

	o, err := s.PlaceOrder(ctx, 1, items(1, 1), "", false)
	require.NoError(t, err)

	type item struct {
		Seq      int64  `json:"seq"`
		ID       string `json:"id"`
		Topic    string `json:"topic"`
		Status   string `json:"status"`
		Error    string `json:"error"`
		Attempts int    `json:"attempts"`
	}
	var list []item
	require.Eventually(t, func() bool {
		code, body := shoptest.Get(t, s.InventoryURL()+"/events/outbox/dead-letters")
		require.Equal(t, http.StatusOK, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list) == 1
	}, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, events.StockDeducted, list[0].Topic)
	assert.Equal(t, "FAILED", list[0].Status)
	assert.Equal(t, 2, list[0].Attempts)
	assert.Contains(t, list[0].Error, "refused")

	// The relay's failures and the dead letter show in the inventory's
	// metrics (rule 7: failures and lag as Prometheus metrics).
	metricsURL := s.InventoryURL() + "/metrics"
	assert.Equal(t, 2.0, scrape(t, metricsURL, `dtx_outbox_publish_failures_total{service="inventory"}`))
	assert.Equal(t, 1.0, scrape(t, metricsURL, `dtx_outbox_given_up_total{service="inventory"}`))
	assert.Equal(t, 1.0, scrape(t, metricsURL, `dtx_dead_letters{service="inventory",source="outbox"}`))
	assert.Equal(t, 0.0, scrape(t, metricsURL, `dtx_dead_letters{service="inventory",source="inbox"}`))

	rep, err := s.Verify(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, rep.Violations)
	assert.Contains(t, fmt.Sprint(rep.Violations), "FAILED after 2 publishes")

	post := func(action, seq string) int {
		resp, err := http.Post(s.InventoryURL()+"/events/outbox/dead-letters/"+action+"?seq="+seq, "application/json", nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, post("replay", "x"))
	assert.Equal(t, http.StatusNotFound, post("discard", "999999"))
	b.refuse.Store(false)
	assert.Equal(t, http.StatusNoContent, post("replay", fmt.Sprint(list[0].Seq)))

	require.Eventually(t, func() bool {
		got, err := s.Orders.Get(ctx, o.ID)
		require.NoError(t, err)
		return got.Status == order.Completed
	}, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, shopReport{completed: 1}, *settle(t, s, 10*time.Second))
	assert.Equal(t, 0.0, scrape(t, metricsURL, `dtx_dead_letters{service="inventory",source="outbox"}`), "replayed")
	assert.Positive(t, scrape(t, metricsURL, `dtx_outbox_published_total{service="inventory"}`))
	assert.Equal(t, 1.0, scrape(t, metricsURL, `dtx_outbox_leader{service="inventory"}`))
}

// scrape returns the value of one series (name and labels, as exposed) in
// the Prometheus text served at url.
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	code, body := shoptest.Get(t, url)
	require.Equal(t, http.StatusOK, code, body)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f
		}
	}
	t.Fatalf("no series %s in:\n%s", series, body)
	return 0
}
