package verify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// newTCCShop returns a TCC shop at quiescence with order 1 COMPLETED (user
// 1, 2 x product 1, total 200, reservations CONFIRMED, payment CHARGED) and
// order 2 CANCELLED (user 2 declined).
func newTCCShop(t *testing.T) *shop.Shop {
	t.Helper()
	s := shoptest.MustShop(t, shop.Config{Pattern: order.PatternTCC})
	ctx := context.Background()
	o, err := s.PlaceOrder(ctx, 1, []order.Item{{ProductID: 1, Quantity: 2}}, "", true)
	require.NoError(t, err)
	require.Equal(t, int64(1), o.ID)
	o, err = s.PlaceOrder(ctx, 2, []order.Item{{ProductID: 2, Quantity: 1}}, "", true)
	require.NoError(t, err)
	require.Equal(t, order.Cancelled, o.Status)
	require.Eventually(t, func() bool {
		r, err := s.Verify(ctx)
		require.NoError(t, err)
		return r.OK() && r.Completed == 1 && r.Cancelled == 1
	}, 5*time.Second, 10*time.Millisecond)
	return s
}

func TestCheckTCC_FindsViolations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inventory []string
		payment   []string
		want      []string
	}{
		{
			name:      "ReservedCounterDrift",
			inventory: []string{`UPDATE products SET available = available - 1, reserved = reserved + 1 WHERE id = 3`},
			want:      []string{"product 3: reserved 1 but RESERVED reservations total 0"},
		},
		{
			name: "CancelledOrderStillHoldsStock",
			inventory: []string{
				`DELETE FROM reservations WHERE order_id = 2`,
				`INSERT INTO reservations (order_id, product_id, quantity, price, status, gid, created_at, updated_at) VALUES (2, 2, 1, 200, 'RESERVED', 'order-2', 0, 0)`,
				`UPDATE products SET available = available - 1, reserved = reserved + 1 WHERE id = 2`,
			},
			want: []string{"order 2 CANCELLED: product 2 still RESERVED (1)"},
		},
		{
			name:      "CompletedOrderNeverConfirmed",
			inventory: []string{`UPDATE reservations SET status = 'RESERVED' WHERE order_id = 1`},
			want: []string{
				"order 1 COMPLETED: product 1 still RESERVED (2)",
				"order 1 COMPLETED: product 1 deducted 0, ordered 2",
				"product 1: sold 2 but live deductions total 0 and confirmed reservations 0",
				"product 1: reserved 0 but RESERVED reservations total 2",
			},
		},
		{
			name:      "CancelledOrderConfirmed",
			inventory: []string{`UPDATE reservations SET status = 'CANCELLED' WHERE order_id = 1`},
			want:      []string{"order 1 COMPLETED: product 1 deducted 0, ordered 2"},
		},
		{
			name:    "CompletedOrderPaymentStillHeld",
			payment: []string{`UPDATE payments SET status = 'RESERVED' WHERE order_id = 1`},
			want: []string{
				"order 1 COMPLETED: payment of 200 still RESERVED",
				"order 1 COMPLETED: no CHARGED payment",
				"account 1: reserved 0 but RESERVED payments total 200",
			},
		},
		{
			name:    "HeldMoneyDrift",
			payment: []string{`UPDATE accounts SET balance = balance - 5, reserved = reserved + 5 WHERE user_id = 4`},
			want:    []string{"account 4: reserved 5 but RESERVED payments total 0"},
		},
		{
			name:    "HoldForUnknownOrder",
			payment: []string{`INSERT INTO payments (order_id, user_id, amount, status, gid, created_at, updated_at) VALUES (99, 4, 5, 'RESERVED', 'x', 0, 0)`},
			want:    []string{"payments: order 99 does not exist but has 5 RESERVED", "account 4: reserved 0 but RESERVED payments total 5"},
		},
		{
			name:      "ReservationForUnknownOrder",
			inventory: []string{`INSERT INTO reservations (order_id, product_id, quantity, price, status, gid, created_at, updated_at) VALUES (99, 1, 1, 100, 'CONFIRMED', 'x', 0, 0)`},
			want:      []string{"reservations: order 99 does not exist but has live reservations"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTCCShop(t)
			ctx := context.Background()
			for _, q := range tc.inventory {
				_, err := s.InventoryDB().ExecContext(ctx, q)
				require.NoError(t, err, q)
			}
			for _, q := range tc.payment {
				_, err := s.PaymentDB().ExecContext(ctx, q)
				require.NoError(t, err, q)
			}
			r, err := s.Verify(ctx)
			require.NoError(t, err)
			require.False(t, r.OK())
			all := strings.Join(r.Violations, "\n")
			for _, w := range tc.want {
				assert.Contains(t, all, w)
			}
		})
	}
}

func TestCheckTCC_PendingMayHold(t *testing.T) {
	s := newTCCShop(t)
	ctx := context.Background()
	// A PENDING order mid-try: its reservations are not violations.
	_, err := s.OrderDB().ExecContext(ctx, `UPDATE orders SET status = 'PENDING' WHERE id = 1`)
	require.NoError(t, err)
	_, err = s.InventoryDB().ExecContext(ctx, `UPDATE reservations SET status = 'RESERVED' WHERE order_id = 1`)
	require.NoError(t, err)
	_, err = s.InventoryDB().ExecContext(ctx, `UPDATE products SET reserved = 2, sold = 0 WHERE id = 1`)
	require.NoError(t, err)
	_, err = s.PaymentDB().ExecContext(ctx, `UPDATE payments SET status = 'RESERVED' WHERE order_id = 1`)
	require.NoError(t, err)
	_, err = s.PaymentDB().ExecContext(ctx, `UPDATE accounts SET reserved = 200, spent = 0 WHERE user_id = 1`)
	require.NoError(t, err)
	r, err := s.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, r.OK(), r.String())
	assert.Equal(t, []int64{1}, r.PendingIDs)
}
