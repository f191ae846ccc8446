package shop_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/tcc"
)

// Seed rule F9 with the operator policy: the payment's confirm fails once
// (the shop's own fault injection). The order stays PENDING, its money
// reserved, and the transaction is listed under attention as waiting for an
// operator; the coordinator does not retry it on its own. An operator's
// retry confirms it: the order is COMPLETED and the invariants hold.
func TestShopConfirmFailure_OperatorPolicyWaitsForARetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	coord := shoptest.MustAdminCoordinator(t)
	failOnce := faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}, Ops: []dtx.Op{dtx.OpConfirm}, Max: 1}
	s := tccShop(t, shop.Config{Coordinator: coord, PaymentFaults: failOnce, TCCOnConfirmFailure: tcc.ConfirmOperator})
	o, err := s.PlaceOrder(ctx, 1, items(1, 1), "", false)
	require.NoError(t, err)
	gid := order.GID(o.ID)

	var why []string
	require.Eventually(t, func() bool {
		att, err := coord.Attention(ctx, client.AttentionFilter{MinAttempts: 1000})
		require.NoError(t, err)
		for _, it := range att.Transactions {
			if it.GID == gid {
				why = it.Why
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "the parked confirm is listed under attention")
	require.Contains(t, why[0], "confirm of step")
	require.Contains(t, why[0], "waiting for an operator")
	require.Equal(t, int64(1), s.FaultStats().Payment.Fail)

	o, err = s.Orders.Get(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Pending, o.Status, "the order waits for the operator")
	assert.Equal(t, payment.Reserved, paymentStatus(t, s, o.ID), "the money stays reserved, not charged, not released")

	r, err := coord.Retry(ctx, gid)
	require.NoError(t, err)
	require.Equal(t, 1, r.Retried)
	rep := settleTCC(t, s, 20*time.Second)
	assert.Equal(t, 1, rep.completed)
	o, err = s.Orders.Get(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, o.Status)
	assert.Equal(t, payment.Charged, paymentStatus(t, s, o.ID))
}

// The default policy (retry) is the control: the same failed confirm is
// retried by the coordinator alone and the order completes.
func TestShopConfirmFailure_RetryPolicyIsTheDefault(t *testing.T) {
	t.Parallel()
	failOnce := faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}, Ops: []dtx.Op{dtx.OpConfirm}, Max: 1}
	s := tccShop(t, shop.Config{PaymentFaults: failOnce})
	o, err := s.PlaceOrder(context.Background(), 1, items(1, 1), "", false)
	require.NoError(t, err)
	rep := settleTCC(t, s, 20*time.Second)
	assert.Equal(t, 1, rep.completed)
	require.Equal(t, int64(1), s.FaultStats().Payment.Fail)
	o, err = s.Orders.Get(context.Background(), o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, o.Status)
}
