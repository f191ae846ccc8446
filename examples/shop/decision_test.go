package shop_test

import (
	"context"
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

// alwaysFail fails every call with one of ops, for the whole test.
func alwaysFail(ops ...dtx.Op) faults.Config {
	return faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}, Ops: ops}
}

// waitCancelled waits until order id is CANCELLED.
func waitCancelled(t *testing.T, s *shop.Shop, id int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		o, err := s.Orders.Get(context.Background(), id)
		require.NoError(t, err)
		return o.Status == order.Cancelled
	}, 20*time.Second, 10*time.Millisecond, "order %d not cancelled", id)
}

// The decision shows at once (seed rule F10), TCC: the stock try fails, and
// the payment's cancel fails every time. The order is CANCELLED anyway, while
// the money is still reserved: the order's cancel does not wait for the
// participants' cancels.
func TestShopDecision_TCCOrderCancelledWhilePaymentCancelFails(t *testing.T) {
	t.Parallel()
	s := tccShop(t, shop.Config{PaymentFaults: alwaysFail(dtx.OpCancel)})
	// 6 Gadgets: product 4 has only 5 in stock.
	o, err := s.PlaceOrder(context.Background(), 1, items(4, 6), "", false)
	require.NoError(t, err)
	waitCancelled(t, s, o.ID)
	require.Eventually(t, func() bool { return s.FaultStats().Payment.Fail > 0 }, 20*time.Second, 5*time.Millisecond,
		"the payment's cancel is tried and fails")
	assert.Equal(t, payment.Reserved, paymentStatus(t, s, o.ID), "the money reservation is still held")
	o, err = s.Orders.Get(context.Background(), o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
}

// The same for the saga: the payment is declined, and the inventory's
// compensation fails every time. The order is CANCELLED while the stock is
// still deducted.
func TestShopDecision_SagaOrderCancelledWhileInventoryCompensationFails(t *testing.T) {
	t.Parallel()
	s := shoptest.MustShop(t, shop.Config{InventoryFaults: alwaysFail(dtx.OpCompensate)})
	o, err := s.PlaceOrder(context.Background(), payment.DeclinedUserID, items(3, 1), "", false)
	require.NoError(t, err)
	waitCancelled(t, s, o.ID)
	require.Eventually(t, func() bool { return s.FaultStats().Inventory.Fail > 0 }, 20*time.Second, 5*time.Millisecond,
		"the inventory's compensation is tried and fails")
	assert.Equal(t, int64(1), mustProduct(t, s, 3).Sold, "the stock is still deducted")
	o, err = s.Orders.Get(context.Background(), o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
}

// Sequential tries (the seeds' TCC): with SequentialTCC a failing inventory
// try never calls the payment service: no try, and so no cancel either.
// Without it the tries run in parallel and the payment is called (the
// control shows that the count sees calls).
func TestShopSequentialTCC_FailingInventoryTryNeverCallsPayment(t *testing.T) {
	t.Parallel()
	for _, sequential := range []bool{true, false} {
		// Every call to the payment is counted (and delayed by 1ms).
		count := faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Delay}, MinDelay: time.Millisecond, Delay: time.Millisecond}
		s := tccShop(t, shop.Config{SequentialTCC: sequential, PaymentFaults: count})
		o, err := s.PlaceOrder(context.Background(), 1, items(4, 6), "", true)
		require.NoError(t, err)
		require.Equal(t, order.Cancelled, o.Status)
		assert.Contains(t, o.Reason, "insufficient stock")
		settleTCC(t, s, 10*time.Second)
		if sequential {
			assert.Zero(t, s.FaultStats().Payment.Calls, "sequential: the payment service got a call")
		} else {
			assert.Positive(t, s.FaultStats().Payment.Calls, "parallel: the payment try runs beside the inventory's")
		}
	}
}

// With SequentialTCC a successful order still completes, and confirms.
func TestShopSequentialTCC_Outcomes(t *testing.T) {
	t.Parallel()
	checkTCCOutcomes(t, tccShop(t, shop.Config{SequentialTCC: true}))
}
