package shop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/examples/shop/verify"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func items(pairs ...int64) []order.Item {
	var out []order.Item
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, order.Item{ProductID: pairs[i], Quantity: pairs[i+1]})
	}
	return out
}

// settle waits until no order is PENDING and the invariants hold. An order
// is cancelled as soon as its saga decides to compensate (seed rule F10),
// so it can be CANCELLED a moment before its stock is restored: wait for
// both.
func settle(t *testing.T, s *shop.Shop, within time.Duration) *shopReport {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		pending, err := s.Orders.List(ctx, order.Pending)
		require.NoError(t, err)
		return len(pending) == 0
	}, within, 20*time.Millisecond, "orders still PENDING")
	var r *verify.Report
	ok := assert.Eventually(t, func() bool {
		var err error
		r, err = s.Verify(ctx)
		require.NoError(t, err)
		return r.Pending == 0 && r.OK()
	}, within, 20*time.Millisecond)
	require.True(t, ok, "not settled: %s", r)
	return &shopReport{r.Completed, r.Cancelled}
}

type shopReport struct{ completed, cancelled int }

func account(t *testing.T, s *shop.Shop, userID int64) payment.Account {
	t.Helper()
	accounts, err := s.Payment.Accounts(context.Background())
	require.NoError(t, err)
	for _, a := range accounts {
		if a.UserID == userID {
			return a
		}
	}
	t.Fatalf("no account %d", userID)
	return payment.Account{}
}

func available(t *testing.T, s *shop.Shop, productID int64) int64 {
	t.Helper()
	p, err := s.Inventory.Product(context.Background(), productID)
	require.NoError(t, err)
	return p.Available
}

// checkOutcomes places one order per saga outcome and checks each.
func checkOutcomes(t *testing.T, s *shop.Shop) {
	ctx := context.Background()

	o, err := s.PlaceOrder(ctx, 1, items(1, 2, 2, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Completed, o.Status)
	assert.Equal(t, int64(2*100+200), o.Total)
	assert.Equal(t, int64(998), available(t, s, 1))
	assert.Equal(t, int64(400), account(t, s, 1).Spent)

	// Declined payment: the stock deducted by step 1 comes back.
	o, err = s.PlaceOrder(ctx, payment.DeclinedUserID, items(3, 1), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "declined")
	assert.Equal(t, int64(50), available(t, s, 3))
	assert.Zero(t, account(t, s, payment.DeclinedUserID).Spent)

	// Not enough stock: nothing to undo.
	o, err = s.PlaceOrder(ctx, 1, items(4, 6), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient stock")
	assert.Equal(t, int64(5), available(t, s, 4))

	// Not enough money (user 3 has 5000, 4 Gizmos cost 6000).
	o, err = s.PlaceOrder(ctx, 3, items(3, 4), "", true)
	require.NoError(t, err)
	assert.Equal(t, order.Cancelled, o.Status)
	assert.Contains(t, o.Reason, "insufficient balance")
	assert.Equal(t, int64(50), available(t, s, 3))

	// Idempotent replay.
	first, err := s.PlaceOrder(ctx, 1, items(2, 1), "key-1", true)
	require.NoError(t, err)
	again, err := s.PlaceOrder(ctx, 1, items(2, 1), "key-1", true)
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, order.Completed, again.Status)
	_, err = s.PlaceOrder(ctx, 1, items(2, 2), "key-1", false)
	var herr *order.HTTPError
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, 409, herr.Status)

	// Invalid input never reaches a saga.
	_, err = s.PlaceOrder(ctx, 1, items(99, 1), "", false)
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, 400, herr.Status)

	rep := settle(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 2, cancelled: 3}, *rep)
}

func TestShop_SagaOutcomes(t *testing.T) {
	t.Parallel()
	s := shoptest.MustShop(t, shop.Config{})
	checkOutcomes(t, s)
}

func TestShop_SagaOutcomesPostgres(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("postgres")
	}
	dsn := pgtest.DSN(t)
	// All three services in one database: their tables do not overlap.
	s := shoptest.MustShop(t, shop.Config{OrderDSN: dsn, InventoryDSN: dsn, PaymentDSN: dsn})
	checkOutcomes(t, s)

	// Concurrent duplicates of one Idempotency-Key make one order.
	c := &order.Client{URL: s.OrderURL()}
	var wg sync.WaitGroup
	ids, errs := make([]int64, 16), make([]error, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := c.Place(context.Background(), order.PlaceRequest{UserID: 4, Items: items(1, 1)}, "pg-dup", false)
			errs[i] = err
			if o != nil {
				ids[i] = o.ID
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		require.NoError(t, errs[i])
		assert.Equal(t, ids[0], ids[i])
	}
	settle(t, s, 10*time.Second)
	_, err := s.Orders.Resubmit(context.Background())
	require.NoError(t, err, "the resubmitter's query runs on Postgres")
	orders, err := s.Orders.List(context.Background(), "")
	require.NoError(t, err)
	assert.Len(t, orders, 6)
}

func TestShop_RestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	coord := shoptest.MustCoordinator(t)
	ctx := context.Background()
	s1, err := shop.Start(ctx, shop.Config{Dir: dir, Coordinator: coord, Logger: shoptest.Logger()})
	require.NoError(t, err)
	_, err = s1.PlaceOrder(ctx, 1, items(1, 3), "", true)
	require.NoError(t, err)
	require.NoError(t, s1.Close(ctx))
	require.NoError(t, s1.Close(ctx), "close is idempotent")

	s2 := shoptest.MustShop(t, shop.Config{Dir: dir, Coordinator: coord})
	assert.Equal(t, int64(997), available(t, s2, 1), "fixtures are seeded only into empty databases")
	settle(t, s2, 5*time.Second)
}

// switchable is a coordinator that can be taken down.
type switchable struct {
	down    atomic.Bool
	refused atomic.Int64 // submissions refused while down
	next    order.Coordinator
}

func (c *switchable) SubmitSaga(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
	if c.down.Load() {
		c.refused.Add(1)
		return nil, errors.New("coordinator unreachable")
	}
	return c.next.SubmitSaga(ctx, spec, wait)
}

func (c *switchable) SubmitXA(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	spec.Sequential = true
	return c.SubmitTCC(ctx, spec, wait)
}

func (c *switchable) SubmitTCC(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	if c.down.Load() {
		c.refused.Add(1)
		return nil, errors.New("coordinator unreachable")
	}
	return c.next.SubmitTCC(ctx, spec, wait)
}

func TestShop_CoordinatorDown(t *testing.T) {
	t.Parallel()
	coord := &switchable{next: shoptest.MustCoordinator(t)}
	coord.down.Store(true)
	s := shoptest.MustShop(t, shop.Config{
		Coordinator:      coord,
		ResubmitInterval: 10 * time.Millisecond,
		ResubmitAfter:    50 * time.Millisecond,
	})
	c := &order.Client{URL: s.OrderURL()}
	ctx := context.Background()
	for i := range 5 {
		o, status, err := c.PlaceStatus(ctx, order.PlaceRequest{UserID: int64(1 + i%2), Items: items(1, 1)}, "", false)
		require.NoError(t, err)
		assert.Equal(t, 202, status)
		assert.Equal(t, order.Pending, o.Status)
	}
	// Several resubmission rounds (one refusal each) after the five
	// placements: nothing changes while the coordinator is down.
	require.Eventually(t, func() bool { return coord.refused.Load() >= 10 }, 10*time.Second, time.Millisecond)
	pending, err := s.Orders.List(ctx, order.Pending)
	require.NoError(t, err)
	assert.Len(t, pending, 5, "nothing happens while the coordinator is down")

	coord.down.Store(false)
	rep := settle(t, s, 10*time.Second)
	assert.Equal(t, shopReport{completed: 3, cancelled: 2}, *rep)
}

func TestShop_Faults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	fc := func(seed int64) faults.Config {
		return faults.Config{Rate: 0.3, Kinds: faults.AllKinds, Delay: 300 * time.Millisecond, Seed: seed}
	}
	s := shoptest.MustShop(t, shop.Config{
		OrderFaults:     fc(1),
		InventoryFaults: fc(2),
		PaymentFaults:   fc(3),
		// Shorter than the longest delay: some actions arrive late.
		BranchTimeout: 100 * time.Millisecond,
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Mostly orders that can succeed; users 2 and 3 and product 4
			// (5 in stock) bring failures.
			user := []int64{1, 1, 4, 2, 3}[i%5]
			_, errs[i] = s.PlaceOrder(ctx, user, items(int64(1+i%4), 1+int64(i%3)), fmt.Sprintf("k%d", i), false)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	rep := settle(t, s, 60*time.Second)
	assert.Equal(t, 40, rep.completed+rep.cancelled)
	st := s.FaultStats()
	t.Logf("faults: %+v; %d completed, %d cancelled", st, rep.completed, rep.cancelled)
	assert.Positive(t, st.Total())
}

func TestStart_Validates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := shop.Start(ctx, shop.Config{Dir: t.TempDir()})
	require.Error(t, err, "no coordinator")
	_, err = shop.Start(ctx, shop.Config{Coordinator: &switchable{}})
	require.Error(t, err, "no dir")
	_, err = shop.Start(ctx, shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, PaymentFaults: faults.Config{Rate: 2}})
	require.Error(t, err, "bad faults")
	_, err = shop.Start(ctx, shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, OrderDSN: "mysql://x"})
	require.Error(t, err, "bad dsn")
}

// The tailing relay needs PostgreSQL for every service and never gives a
// message up: other configurations are refused at start, naming why.
func TestStart_TailingRelayNeedsPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nb, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { nb.Close() })
	cfg := shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, Pattern: order.PatternChoreography, Broker: nb, Relay: shop.RelayTailing}
	_, err = shop.Start(ctx, cfg)
	require.ErrorContains(t, err, "the order service needs a postgres:// DSN")
	cfg.OutboxMaxAttempts = 3
	_, err = shop.Start(ctx, cfg)
	require.ErrorContains(t, err, "OutboxMaxAttempts must be 0")
	cfg.OutboxMaxAttempts, cfg.Relay = 0, "logical"
	_, err = shop.Start(ctx, cfg)
	require.ErrorContains(t, err, `Relay "logical"`)
}
