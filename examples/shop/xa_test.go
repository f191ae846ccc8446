package shop_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/internal/pgtest"
)

// xaShop runs the shop with the XA pattern, each service on its own
// throwaway PostgreSQL database.
func xaShop(t *testing.T, cfg shop.Config) *shop.Shop {
	t.Helper()
	if testing.Short() {
		t.Skip("postgres")
	}
	cfg.Pattern = order.PatternXA
	cfg.OrderDSN, cfg.InventoryDSN, cfg.PaymentDSN = pgtest.DSN(t), pgtest.DSN(t), pgtest.DSN(t)
	return shoptest.MustShop(t, cfg)
}

// preparedCount counts the prepared transactions of the inventory and
// payment databases.
func preparedCount(t *testing.T, s *shop.Shop) int {
	t.Helper()
	n := 0
	for _, db := range []*sql.DB{s.InventoryDB(), s.PaymentDB()} {
		var k int
		require.NoError(t, db.QueryRowContext(context.Background(),
			`SELECT COUNT(*) FROM pg_prepared_xacts WHERE database = current_database()`).Scan(&k))
		n += k
	}
	return n
}

func TestShopXA_OutcomesPostgres(t *testing.T) {
	t.Parallel()
	s := xaShop(t, shop.Config{})
	ctx := context.Background()

	// Happy path: both branches committed, the order completed.
	o, err := s.PlaceOrder(ctx, 1, items(1, 2, 2, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.PatternXA, o.Pattern)
	assert.Equal(t, order.Completed, o.Status)
	settle(t, s, 10*time.Second)
	assert.Equal(t, inventory.Product{ID: 1, Name: "Widget", Price: 100, Available: 998, Sold: 2, Initial: 1000}, mustProduct(t, s, 1))
	assert.Equal(t, payment.Account{UserID: 1, Balance: 1_000_000 - 400, Spent: 400, Initial: 1_000_000}, account(t, s, 1))
	assert.Equal(t, payment.Charged, paymentStatus(t, s, o.ID))

	// Declined payment: the inventory branch, prepared first, is rolled
	// back: the stock never moved.
	o, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "declined")
	settle(t, s, 10*time.Second)
	assert.Equal(t, int64(50), available(t, s, 3))
	assert.Zero(t, mustProduct(t, s, 3).Sold)

	// Not enough stock: the payment is never prepared.
	o, err = s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient stock")
	assert.Empty(t, paymentStatus(t, s, o.ID))

	// Idempotent replay.
	first, err := s.PlaceOrder(ctx, 1, items(2, 1), "xa-key-1", true)
	require.NoError(t, err)
	again, err := s.PlaceOrder(ctx, 1, items(2, 1), "xa-key-1", true)
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)

	rep := settle(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 2, cancelled: 2}, *rep)
	assert.Equal(t, int64(400+200), account(t, s, 1).Spent)
	assert.Zero(t, preparedCount(t, s), "no branch left prepared")
}

func TestShopXA_NeedsXADatabases(t *testing.T) {
	t.Parallel()
	_, err := shop.Start(context.Background(), shop.Config{
		Dir: t.TempDir(), Pattern: order.PatternXA, Coordinator: shoptest.MustCoordinator(t), Logger: shoptest.Logger(),
	})
	require.ErrorContains(t, err, "the xa pattern needs PostgreSQL or MySQL databases")
}

// statusSource answers the resolver as a coordinator would: the status of
// each gid it knows, not found for the others.
type statusSource map[string]dtx.Status

func (f statusSource) Get(_ context.Context, gid string) (*dtx.TxDetail, error) {
	st, ok := f[gid]
	if !ok || st == "" {
		return nil, dtx.ErrNotFound
	}
	return &dtx.TxDetail{Tx: dtx.Tx{GID: gid, Status: st}}, nil
}

// TestShopXA_ResolverFinishesInDoubt leaves branches prepared, as a
// coordinator that died between prepare and commit would, and checks that
// the resolver finishes each in the direction the log gives: commit for a
// succeeded transaction, rollback for a failed one or one the coordinator
// never recorded (presumed abort); a running one is left alone.
func TestShopXA_ResolverFinishesInDoubt(t *testing.T) {
	t.Parallel()
	s := xaShop(t, shop.Config{})
	ctx := context.Background()
	cases := []struct {
		status   dtx.Status
		wantSold int64 // product 2 sold after the sweep
		left     int   // branches still prepared
	}{
		{dtx.StatusRunning, 0, 1},
		{dtx.StatusSucceeded, 3, 0},
		{dtx.StatusFailed, 3, 0},
		{"", 3, 0}, // unknown to the coordinator
	}
	for i, tc := range cases {
		gid := fmt.Sprintf("xa-doubt-%d", i)
		orderID := int64(9000 + i)
		before := mustProduct(t, s, 2).Sold
		code, body := shoptest.Call(t, s.InventoryURL()+inventory.PathXAPrepare, gid, 1, dtx.OpTry,
			fmt.Sprintf(`{"order_id":%d,"items":[{"product_id":2,"quantity":3}]}`, orderID))
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, before, mustProduct(t, s, 2).Sold, "a prepared branch is invisible")
		assert.Equal(t, 1, preparedCount(t, s))

		r := s.Inventory.Resolver(statusSource{gid: tc.status})
		r.MinAge = time.Hour
		now := time.Now()
		r.Now = func() time.Time { return now }
		_, err := r.Sweep(ctx) // first sight: too young
		require.NoError(t, err)
		assert.Equal(t, 1, preparedCount(t, s))
		now = now.Add(time.Hour) // seen prepared for MinAge
		n, err := r.Sweep(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1-tc.left, n)
		assert.Equal(t, tc.wantSold, mustProduct(t, s, 2).Sold, "status %q", tc.status)
		assert.Equal(t, tc.left, preparedCount(t, s), "status %q", tc.status)

		// The coordinator's own call comes later and agrees.
		op, path := dtx.OpCancel, inventory.PathXARollback
		if tc.status == dtx.StatusSucceeded {
			op, path = dtx.OpConfirm, inventory.PathXACommit
		}
		code, body = shoptest.Call(t, s.InventoryURL()+path, gid, 1, op, fmt.Sprintf(`{"order_id":%d}`, orderID))
		require.Equal(t, http.StatusOK, code, body)
		assert.Zero(t, preparedCount(t, s))

		// A late prepare of a rolled-back branch is refused (hanging).
		if op == dtx.OpCancel {
			code, body = shoptest.Call(t, s.InventoryURL()+inventory.PathXAPrepare, gid, 1, dtx.OpTry,
				fmt.Sprintf(`{"order_id":%d,"items":[{"product_id":2,"quantity":3}]}`, orderID))
			require.Equal(t, http.StatusConflict, code, body)
			assert.Zero(t, preparedCount(t, s))
		}
	}
	assert.Equal(t, int64(3), mustProduct(t, s, 2).Sold, "only the succeeded transaction sold")
	assert.Equal(t, int64(1000-3), available(t, s, 2))
}
