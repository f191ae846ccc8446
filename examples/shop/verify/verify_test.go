package verify_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/verify"
)

// newShop returns a shop with order 1 COMPLETED (user 1, 2 x product 1,
// total 200) and order 2 CANCELLED (user 2 declined after its stock was
// deducted, so it has a cancelled ledger row and a DECLINED payment).
func newShop(t *testing.T) *shop.Shop {
	t.Helper()
	s := shoptest.MustShop(t, shop.Config{})
	ctx := context.Background()
	o, err := s.PlaceOrder(ctx, 1, []order.Item{{ProductID: 1, Quantity: 2}}, "", true)
	require.NoError(t, err)
	require.Equal(t, order.Completed, o.Status)
	o, err = s.PlaceOrder(ctx, 2, []order.Item{{ProductID: 2, Quantity: 1}}, "", true)
	require.NoError(t, err)
	require.Equal(t, order.Cancelled, o.Status)
	return s
}

func TestCheck_Clean(t *testing.T) {
	s := newShop(t)
	_, err := s.PlaceOrder(context.Background(), 1, []order.Item{{ProductID: 3, Quantity: 1}}, "", false)
	require.NoError(t, err)
	r, err := verify.Check(context.Background(), s.OrderDB(), s.InventoryDB(), s.PaymentDB())
	require.NoError(t, err)
	assert.True(t, r.OK(), r.String())
	assert.Equal(t, 3, r.Orders)
	assert.Equal(t, r.Orders, r.Completed+r.Cancelled+r.Pending)
	assert.GreaterOrEqual(t, r.Completed, 1)
	assert.Equal(t, 1, r.Cancelled)
}

func TestCheck_FindsViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(*shop.Shop) *sql.DB
		sql  string
		want []string // substrings of expected violations
	}{
		{
			name: "StockCounterDrift",
			db:   (*shop.Shop).InventoryDB,
			sql:  `UPDATE products SET sold = sold + 1 WHERE id = 1`,
			want: []string{"product 1: available 998 + reserved 0 + sold 3 = 1001, want initial 1000", "product 1: sold 3 but live deductions total 2"},
		},
		{
			name: "MoneyAppearsFromNowhere",
			db:   (*shop.Shop).PaymentDB,
			sql:  `UPDATE accounts SET balance = balance + 50 WHERE user_id = 1`,
			want: []string{"account 1: balance 999850 + reserved 0 + spent 200 = 1000050, want initial 1000000"},
		},
		{
			name: "CompletedOrderNotCharged",
			db:   (*shop.Shop).PaymentDB,
			sql:  `UPDATE payments SET status = 'REFUNDED' WHERE order_id = 1`,
			want: []string{"order 1 COMPLETED: no CHARGED payment", "account 1: spent 200 but CHARGED payments total 0"},
		},
		{
			name: "CancelledOrderStillDeducted",
			db:   (*shop.Shop).InventoryDB,
			sql:  `UPDATE deductions SET status = 'DEDUCTED' WHERE order_id = 2`,
			want: []string{"order 2 CANCELLED: product 2 still deducted (1)", "product 2: sold 0 but live deductions total 1"},
		},
		{
			name: "CancelledFlippedToCompleted",
			db:   (*shop.Shop).OrderDB,
			sql:  `UPDATE orders SET status = 'COMPLETED' WHERE id = 2`,
			want: []string{"order 2 COMPLETED: product 2 deducted 0, ordered 1", "order 2 COMPLETED: no CHARGED payment"},
		},
		{
			name: "ChargedWrongAmount",
			db:   (*shop.Shop).OrderDB,
			sql:  `UPDATE orders SET total = 250 WHERE id = 1`,
			want: []string{"order 1 COMPLETED: charged 200, order total is 250", "order 1 COMPLETED: goods deducted are worth 200, order total is 250"},
		},
		{
			name: "PaymentForUnknownOrder",
			db:   (*shop.Shop).PaymentDB,
			sql:  `INSERT INTO payments (order_id, user_id, amount, status, gid, created_at, updated_at) VALUES (99, 1, 5, 'CHARGED', 'x', 0, 0)`,
			want: []string{"payments: order 99 does not exist but is CHARGED 5", "account 1: spent 200 but CHARGED payments total 205"},
		},
		{
			name: "DeductionForUnknownOrder",
			db:   (*shop.Shop).InventoryDB,
			sql:  `INSERT INTO deductions (order_id, product_id, quantity, price, status, gid, created_at) VALUES (99, 1, 1, 100, 'DEDUCTED', 'x', 0)`,
			want: []string{"deductions: order 99 does not exist but has live deductions"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newShop(t)
			ctx := context.Background()
			_, err := tc.db(s).ExecContext(ctx, tc.sql)
			require.NoError(t, err)
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

func TestReport_String(t *testing.T) {
	r := &verify.Report{Orders: 3, Completed: 1, Cancelled: 1, Pending: 1, Violations: []string{"product 1: x"}}
	assert.Equal(t, "3 orders: 1 completed, 1 cancelled, 1 pending; 1 violations\n  product 1: x", r.String())
}
