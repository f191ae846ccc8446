package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
)

// undone calls a cancel endpoint as the coordinator does (repeating a call
// it already made: the barrier lets it through as a duplicate) and returns
// the total_price it answers.
func undone(t *testing.T, url, gid string, branch int, op dtx.Op, orderID int64) int64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(fmt.Sprintf(`{"order_id":%d}`, orderID))))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(dtx.HeaderGID, gid)
	req.Header.Set(dtx.HeaderBranch, fmt.Sprint(branch))
	req.Header.Set(dtx.HeaderOp, string(op))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		OrderID    int64  `json:"order_id"`
		TotalPrice *int64 `json:"total_price"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, orderID, out.OrderID)
	require.NotNil(t, out.TotalPrice, "the answer says what was undone")
	return *out.TotalPrice
}

// Compensation results (seed rules F12/F13), saga: the cancel endpoints
// answer the total_price they undid, the same on every retry.
//   - F12: the payment fails after the stock was deducted: the product
//     cancel answers the price it restored; the point cancel has nothing
//     to refund and answers 0.
//   - F13: the deduct fails: the product cancel answers 0 and the payment
//     service is never called (its step never ran, so the coordinator has
//     nothing of it to compensate).
func TestShopCompensationResults(t *testing.T) {
	t.Parallel()
	// Every call to the payment is counted (and delayed by 1ms).
	count := faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Delay}, MinDelay: time.Millisecond, Delay: time.Millisecond}
	s := shoptest.MustShop(t, shop.Config{PaymentFaults: count})
	ctx := context.Background()
	inv := s.InventoryURL() + "/inventory/deduct/cancel"
	pay := s.PaymentURL() + "/payment/charge/cancel"

	// F13: 6 of product 4, which has 5.
	o, err := s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	require.Equal(t, order.Cancelled, o.Status)
	settle(t, s, 10*time.Second)
	assert.Zero(t, s.FaultStats().Payment.Calls, "no point call when the product did nothing")
	for range 2 {
		assert.Zero(t, undone(t, inv, o.GID, 1, dtx.OpCompensate, o.ID))
	}

	// F12: 2 Gizmos (2 x 1500) for a user whose payment is declined.
	o, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 2), "", true)
	require.NoError(t, err)
	require.Equal(t, order.Cancelled, o.Status)
	settle(t, s, 10*time.Second)
	for range 2 {
		assert.Equal(t, int64(3000), undone(t, inv, o.GID, 1, dtx.OpCompensate, o.ID), "restored 2 Gizmos")
		assert.Zero(t, undone(t, pay, o.GID, 2, dtx.OpCompensate, o.ID), "nothing was charged")
	}
	assert.Equal(t, int64(50), available(t, s, 3))
}

// The TCC cancels answer what they released: the money reservation of an
// order whose stock try failed, and 0 for the stock.
func TestShopCompensationResultsTCC(t *testing.T) {
	t.Parallel()
	s := tccShop(t, shop.Config{})
	ctx := context.Background()
	o, err := s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	require.Equal(t, order.Cancelled, o.Status)
	settleTCC(t, s, 10*time.Second)
	// The tries run in parallel: the money was reserved, then released.
	require.Equal(t, payment.Cancelled, paymentStatus(t, s, o.ID))
	// Branches: 0 the order, 1 the inventory, 2 the payment.
	for range 2 {
		assert.Zero(t, undone(t, s.InventoryURL()+"/inventory/reserve/cancel", o.GID, 1, dtx.OpCancel, o.ID))
		assert.Equal(t, o.Total, undone(t, s.PaymentURL()+"/payment/reserve/cancel", o.GID, 2, dtx.OpCancel, o.ID))
	}
}
