package demo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop/cart"
	"github.com/dtxhq/dtx/examples/shop/demo"
)

// The event-sourced carts: every cart is checked out into one order,
// nothing is stuck, the carts agree with their orders, and the read model
// equals the fold of the events and the completed orders.
func TestRunEventSourcing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	d, err := demo.Start(ctx, demo.Config{
		Pattern: demo.PatternEventSourcing, Orders: 30, Concurrency: 4, FaultRate: 0.2, Seed: 7,
		Dir: t.TempDir(), QuiesceTimeout: time.Minute, Out: &out,
	})
	require.NoError(t, err)
	defer d.Close()
	res, err := d.Run(ctx)
	require.NoError(t, err)
	require.True(t, res.OK(), "violations %v, stuck %v", res.ViolationList, res.StuckList)
	require.Equal(t, "eventsourcing", res.Pattern)
	require.Equal(t, 30, res.Orders, "one order per cart")
	require.Equal(t, res.Orders, res.Completed+res.Cancelled)
	require.Equal(t, 3, res.DuplicatesSent)
	require.Positive(t, res.FaultsInjected["fail"]+res.FaultsInjected["lose"])
	require.NotEmpty(t, res.URLs["cart"])

	// The cart service is still serving: its read model is caught up and
	// its sales count exactly the completed orders' items.
	var lags []cart.LagView
	getJSON(t, res.URLs["cart"]+"/projections", &lags)
	require.Len(t, lags, 1)
	require.Zero(t, lags[0].Events)
	var sales []cart.SalesRow
	getJSON(t, res.URLs["cart"]+"/sales", &sales)
	var orders []struct {
		Status string `json:"status"`
		Items  []struct {
			Quantity int64 `json:"quantity"`
		} `json:"items"`
	}
	getJSON(t, res.URLs["order"]+"/orders", &orders)
	var units, sold int64
	for _, o := range orders {
		if o.Status == "COMPLETED" {
			for _, it := range o.Items {
				units += it.Quantity
			}
		}
	}
	for _, s := range sales {
		sold += s.Units
	}
	require.Positive(t, units)
	require.Equal(t, units, sold)

	var text strings.Builder
	res.WriteText(&text)
	require.Contains(t, text.String(), "invariants: OK")
	require.Contains(t, text.String(), "One cancelled cart")
	require.Contains(t, text.String(), cart.OrderSettled)
	var hold strings.Builder
	res.WriteHoldText(&hold)
	require.Contains(t, hold.String(), res.URLs["cart"]+"/carts/demo-7-0/events")
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.Contains(t, string(b), `"pattern":"eventsourcing"`)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}
