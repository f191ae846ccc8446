package shop_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/internal/shopxa"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/examples/shop/verify"
	"github.com/dtxhq/dtx/internal/pgtest"
)

// settleTCC waits until no order is PENDING and the invariants hold. A TCC
// transaction confirms (or cancels) the order in parallel with the
// reservations, so an order can finish a moment before its reservations do:
// wait for both.
func settleTCC(t *testing.T, s *shop.Shop, within time.Duration) *shopReport {
	t.Helper()
	ctx := context.Background()
	var last *verify.Report
	ok := assert.Eventually(t, func() bool {
		r, err := s.Verify(ctx)
		require.NoError(t, err)
		last = r
		return r.Pending == 0 && r.OK()
	}, within, 20*time.Millisecond)
	if !ok {
		t.Fatalf("not settled: %s; pending %v", last, last.PendingIDs)
	}
	for _, id := range []int64{1, 2, 3, 4, 5} {
		p, err := s.Inventory.Product(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, p.Reserved, "product %d reserved", id)
	}
	for _, a := range mustAccounts(t, s) {
		assert.Zero(t, a.Reserved, "account %d reserved", a.UserID)
	}
	return &shopReport{last.Completed, last.Cancelled}
}

func mustAccounts(t *testing.T, s *shop.Shop) []payment.Account {
	t.Helper()
	accounts, err := s.Payment.Accounts(context.Background())
	require.NoError(t, err)
	return accounts
}

func reservations(t *testing.T, s *shop.Shop, orderID int64) map[int64]string {
	t.Helper()
	rs, err := s.Inventory.Reservations(context.Background(), orderID)
	require.NoError(t, err)
	out := map[int64]string{}
	for _, r := range rs {
		out[r.ProductID] = r.Status
	}
	return out
}

func paymentStatus(t *testing.T, s *shop.Shop, orderID int64) string {
	t.Helper()
	p, err := s.Payment.Payment(context.Background(), orderID)
	if err != nil {
		return "" // none
	}
	return p.Status
}

func tccShop(t *testing.T, cfg shop.Config) *shop.Shop {
	t.Helper()
	cfg.Pattern = order.PatternTCC
	return shoptest.MustShop(t, cfg)
}

// checkTCCOutcomes places one TCC order per outcome and checks each.
func checkTCCOutcomes(t *testing.T, s *shop.Shop) {
	ctx := context.Background()

	// Happy path: both reservations confirmed, the order completed.
	o, err := s.PlaceOrder(ctx, 1, items(1, 2, 2, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.PatternTCC, o.Pattern)
	assert.Equal(t, int64(2*100+200), o.Total)
	// The order's own confirm runs beside the participants': wait for all.
	settleTCC(t, s, 10*time.Second)
	got, err := s.Orders.Get(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, got.Status)
	assert.Equal(t, map[int64]string{1: inventory.Confirmed, 2: inventory.Confirmed}, reservations(t, s, o.ID))
	assert.Equal(t, payment.Charged, paymentStatus(t, s, o.ID))
	p1, err := s.Inventory.Product(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, inventory.Product{ID: 1, Name: "Widget", Price: 100, Available: 998, Sold: 2, Initial: 1000}, p1)
	a1 := account(t, s, 1)
	assert.Equal(t, payment.Account{UserID: 1, Balance: 1_000_000 - 400, Spent: 400, Initial: 1_000_000}, a1)

	// Declined payment: the stock reservation, if the try got there, is
	// cancelled.
	o, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "declined")
	settleTCC(t, s, 10*time.Second)
	for pid, st := range reservations(t, s, o.ID) {
		assert.Equal(t, inventory.Cancelled, st, "product %d", pid)
	}
	assert.Equal(t, int64(50), available(t, s, 3))
	assert.Equal(t, payment.Declined, paymentStatus(t, s, o.ID))
	assert.Zero(t, account(t, s, payment.DeclinedUserID).Spent)

	// Not enough stock: the money reservation is released.
	o, err = s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient stock")
	settleTCC(t, s, 10*time.Second)
	assert.Empty(t, reservations(t, s, o.ID))
	assert.Contains(t, []string{"", payment.Cancelled}, paymentStatus(t, s, o.ID))
	assert.Equal(t, int64(5), available(t, s, 4))
	assert.Equal(t, a1, account(t, s, 1), "balance back, nothing held")

	// Not enough money (user 3 has 5000, 4 Gizmos cost 6000).
	o, err = s.PlaceOrder(ctx, 3, items(3, 4), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient balance")

	// Idempotent replay.
	first, err := s.PlaceOrder(ctx, 1, items(2, 1), "tcc-key-1", true)
	require.NoError(t, err)
	again, err := s.PlaceOrder(ctx, 1, items(2, 1), "tcc-key-1", true)
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)

	rep := settleTCC(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 2, cancelled: 3}, *rep)
	assert.Equal(t, int64(400+200), account(t, s, 1).Spent)
	assert.Zero(t, mustProduct(t, s, 3).Sold, "no Gizmo sold")
}

func mustProduct(t *testing.T, s *shop.Shop, id int64) inventory.Product {
	t.Helper()
	p, err := s.Inventory.Product(context.Background(), id)
	require.NoError(t, err)
	return p
}

func TestShopTCC_Outcomes(t *testing.T) {
	t.Parallel()
	checkTCCOutcomes(t, tccShop(t, shop.Config{}))
}

func TestShopTCC_OutcomesPostgres(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("postgres")
	}
	dsn := pgtest.DSN(t)
	checkTCCOutcomes(t, tccShop(t, shop.Config{OrderDSN: dsn, InventoryDSN: dsn, PaymentDSN: dsn}))
}

// A try that reaches the inventory after the coordinator gave up on it and
// cancelled it (here every try is slower than the whole try phase) must
// leave nothing reserved: the cancel found no try and recorded a null
// cancel, so the barrier refuses the late try.
func TestShopTCC_LateTryAfterCancel(t *testing.T) {
	t.Parallel()
	// Every try reaching the inventory is held past the transaction's
	// deadline. The deadline leaves a loaded machine ample time to get the
	// first try there (the test needs at least one late try).
	const delay = 2 * time.Second
	s := tccShop(t, shop.Config{
		InventoryFaults: faults.Config{
			Rate: 1, Kinds: []faults.Kind{faults.Delay}, MinDelay: delay, Delay: delay,
			Ops: []dtx.Op{dtx.OpTry},
		},
		BranchTimeout: 50 * time.Millisecond,
		SagaTimeout:   time.Second,
	})
	ctx := context.Background()
	o, err := s.PlaceOrder(ctx, 1, items(1, 3), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Positive(t, s.FaultStats().Inventory.Delay)

	// Every late try has arrived (and been refused): no delayed call is
	// still waiting. No try starts after the cancellation.
	require.Eventually(t, func() bool { return s.FaultStats().Inventory.Late == 0 }, 10*time.Second, 5*time.Millisecond)
	settleTCC(t, s, 5*time.Second)
	assert.Empty(t, reservations(t, s, o.ID), "no reservation from a late try")
	var barred int
	require.NoError(t, s.InventoryDB().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM `+inventory.BarrierTable+` WHERE gid = $1 AND op = $2 AND origin = $3`,
		o.GID, dtx.OpTry, dtx.OpCancel).Scan(&barred))
	assert.Equal(t, 1, barred, "the cancel ran first and barred the try (null cancel)")
	p := mustProduct(t, s, 1)
	assert.Equal(t, int64(1000), p.Available)
	assert.Zero(t, p.Reserved)
	assert.Zero(t, p.Sold)
	assert.Contains(t, []string{"", payment.Cancelled}, paymentStatus(t, s, o.ID))
	assert.Equal(t, int64(1_000_000), account(t, s, 1).Balance)
}

// Confirms that fail are retried until they succeed: a TCC transaction past
// its tries only moves forward.
func TestShopTCC_ConfirmRetried(t *testing.T) {
	t.Parallel()
	confirmFails := func(n int64) faults.Config {
		return faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}, Ops: []dtx.Op{dtx.OpConfirm}, Max: n}
	}
	s := tccShop(t, shop.Config{
		OrderFaults:     confirmFails(2),
		InventoryFaults: confirmFails(3),
		PaymentFaults:   confirmFails(4),
	})
	ctx := context.Background()
	o, err := s.PlaceOrder(ctx, 4, items(1, 1, 3, 2), "", true)
	require.NoError(t, err)
	rep := settleTCC(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 1}, *rep)
	got, err := s.Orders.Get(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, got.Status)
	assert.Equal(t, map[int64]string{1: inventory.Confirmed, 3: inventory.Confirmed}, reservations(t, s, o.ID))
	assert.Equal(t, payment.Charged, paymentStatus(t, s, o.ID))
	assert.Equal(t, int64(100+2*1500), account(t, s, 4).Spent)
	st := s.FaultStats()
	assert.Equal(t, int64(2), st.Order.Fail)
	assert.Equal(t, int64(3), st.Inventory.Fail)
	assert.Equal(t, int64(4), st.Payment.Fail)
}

// A user whose first order is stuck PENDING (coordinator down, then slow
// confirms) orders again with a new key, and retries the first request too.
// Each order is charged at most once: nothing confirms an order twice, and
// the re-order is a separate order with its own charge.
func TestShopTCC_ReorderWhilePending(t *testing.T) {
	t.Parallel()
	coord := &switchable{next: shoptest.MustCoordinator(t)}
	coord.down.Store(true)
	s := tccShop(t, shop.Config{
		Coordinator:      coord,
		ResubmitInterval: 10 * time.Millisecond,
		ResubmitAfter:    50 * time.Millisecond,
		PaymentFaults:    faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail, faults.Lose}, Ops: []dtx.Op{dtx.OpConfirm}, Max: 6},
	})
	ctx := context.Background()
	c := &order.Client{URL: s.OrderURL()}
	req := order.PlaceRequest{UserID: 4, Items: items(2, 1)}
	old, status, err := c.PlaceStatus(ctx, req, "first", false)
	require.NoError(t, err)
	assert.Equal(t, 202, status)
	assert.Equal(t, order.Pending, old.Status)

	// The user gives up on the first order and orders again.
	reorder, status, err := c.PlaceStatus(ctx, req, "second", false)
	require.NoError(t, err)
	assert.Equal(t, 202, status)
	assert.NotEqual(t, old.ID, reorder.ID)

	coord.down.Store(false)
	// Meanwhile the client retries both requests, and the resubmitter runs.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"first", "second"}[i%2]
			o, err := c.Place(ctx, req, key, i%3 == 0)
			assert.NoError(t, err)
			if o != nil {
				assert.Contains(t, []int64{old.ID, reorder.ID}, o.ID)
			}
		}()
	}
	wg.Wait()
	rep := settleTCC(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 2}, *rep)
	for _, id := range []int64{old.ID, reorder.ID} {
		p, err := s.Payment.Payment(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, payment.Charged, p.Status)
		assert.Equal(t, int64(200), p.Amount, "order %d charged once", id)
	}
	a := account(t, s, 4)
	assert.Equal(t, int64(2*200), a.Spent, "two orders, two charges, no more")
	assert.Zero(t, a.Reserved)
	orders, err := s.Orders.List(ctx, "")
	require.NoError(t, err)
	assert.Len(t, orders, 2)
}

func TestShopTCC_Faults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	fc := func(seed int64) faults.Config {
		return faults.Config{Rate: 0.3, Kinds: faults.AllKinds, Delay: 300 * time.Millisecond, Seed: seed}
	}
	s := tccShop(t, shop.Config{
		OrderFaults:     fc(11),
		InventoryFaults: fc(12),
		PaymentFaults:   fc(13),
		// Shorter than the longest delay: some tries arrive after their
		// cancel, some confirms are retried while still running.
		BranchTimeout: 100 * time.Millisecond,
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []int64{1, 1, 4, 2, 3}[i%5]
			_, errs[i] = s.PlaceOrder(ctx, user, items(int64(1+i%4), 1+int64(i%3)), fmt.Sprintf("tcc-k%d", i), false)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	rep := settleTCC(t, s, 60*time.Second)
	assert.Equal(t, 40, rep.completed+rep.cancelled)
	st := s.FaultStats()
	t.Logf("faults: %+v; %d completed, %d cancelled", st, rep.completed, rep.cancelled)
	assert.Positive(t, st.Total())
	pending, err := s.Orders.List(ctx, order.Pending)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// TestShopTCC_ResolverCancelsStaleReservations leaves reservations behind as
// a lost cancel would, and checks the reserved-state sweep: the
// reservations of a failed transaction, or of one the coordinator never
// recorded, are cancelled; those of running or succeeded ones are left to
// the coordinator (the sweep never confirms).
func TestShopTCC_ResolverCancelsStaleReservations(t *testing.T) {
	t.Parallel()
	s := tccShop(t, shop.Config{})
	ctx := context.Background()
	cases := []struct {
		status dtx.Status
		want   string // reservation status after the sweep
	}{
		{dtx.StatusRunning, inventory.Reserved},
		{dtx.StatusSucceeded, inventory.Reserved},
		{dtx.StatusFailed, inventory.Cancelled},
		{"", inventory.Cancelled},
	}
	known := statusSource{}
	for i, tc := range cases {
		gid := fmt.Sprintf("tcc-stale-%d", i)
		known[gid] = tc.status
		orderID := int64(9100 + i)
		code, body := shoptest.Call(t, s.InventoryURL()+inventory.PathReserve, gid, 1, dtx.OpTry,
			fmt.Sprintf(`{"order_id":%d,"items":[{"product_id":2,"quantity":1}]}`, orderID))
		require.Equal(t, http.StatusOK, code, body)
		code, body = shoptest.Call(t, s.PaymentURL()+payment.PathReserve, gid, 2, dtx.OpTry,
			fmt.Sprintf(`{"order_id":%d,"user_id":1,"amount":200}`, orderID))
		require.Equal(t, http.StatusOK, code, body)

		for _, r := range []*shopxa.Resolver{s.Inventory.Resolver(known), s.Payment.Resolver(known)} {
			r.MinAge = time.Hour
			n, err := r.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "too young to sweep")
			// An hour later on the resolver's clock, the reservation is stale.
			later := time.Now().Add(time.Hour + time.Second)
			r.Now = func() time.Time { return later }
			_, err = r.Sweep(ctx)
			require.NoError(t, err)
		}
		assert.Equal(t, map[int64]string{2: tc.want}, reservations(t, s, orderID), "status %q", tc.status)
		want := payment.Reserved
		if tc.want == inventory.Cancelled {
			want = payment.Cancelled
		}
		assert.Equal(t, want, paymentStatus(t, s, orderID), "status %q", tc.status)
	}
	// Two transactions still hold: 2 units and 400 cents.
	assert.Equal(t, int64(2), mustProduct(t, s, 2).Reserved)
	assert.Equal(t, int64(400), account(t, s, 1).Reserved)
}
