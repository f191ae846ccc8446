package integration_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/store/mysql"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// storeKind describes how a test reaches the coordinator's store: the DSN
// for `dtx server` and a way to open it from the test.
type storeKind struct {
	name string
	dsn  func(t *testing.T) string
	open func(t *testing.T, dsn string) dtx.Store
}

var storeKinds = []storeKind{
	{
		name: "sqlite",
		dsn:  func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "coordinator.db") },
		open: func(t *testing.T, dsn string) dtx.Store {
			s, err := sqlite.Open(context.Background(), strings.TrimPrefix(dsn, "sqlite://"), sqlstore.Config{})
			require.NoError(t, err)
			return s
		},
	},
	{
		name: "postgres",
		dsn:  func(t *testing.T) string { return pgtest.DSN(t) },
		open: func(t *testing.T, dsn string) dtx.Store {
			s, err := postgres.Open(context.Background(), dsn, sqlstore.Config{})
			require.NoError(t, err)
			return s
		},
	},
	{
		name: "mariadb",
		dsn: func(t *testing.T) string {
			srv := mariadbtest.Start(t)
			dsn, err := srv.CreateDB(context.Background(), "coordinator")
			require.NoError(t, err)
			return "mysql://" + dsn
		},
		open: func(t *testing.T, dsn string) dtx.Store {
			s, err := mysql.Open(context.Background(), strings.TrimPrefix(dsn, "mysql://"), sqlstore.Config{})
			require.NoError(t, err)
			return s
		},
	},
}

// startShop runs the reference shop in the test process, submitting its
// sagas to the coordinator at coordAddr. Saga calls are slowed down and
// some responses lost, so that many sagas are in flight at any moment.
//
// The xa pattern runs each service on its own throwaway PostgreSQL
// database. tweak, if given, adjusts the configuration before the start.
func startShop(t *testing.T, coordAddr string, pattern string, tweak ...func(*shop.Config)) *shop.Shop {
	t.Helper()
	fc := func(seed int64) faults.Config {
		return faults.Config{Rate: 0.3, Kinds: []faults.Kind{faults.Delay, faults.Lose}, Delay: 250 * time.Millisecond, Seed: seed}
	}
	cfg := shop.Config{
		Dir: t.TempDir(), CoordinatorURL: "http://" + coordAddr, Pattern: pattern,
		InventoryFaults: fc(1), PaymentFaults: fc(2),
		BranchTimeout: time.Second, SagaTimeout: 2 * time.Minute,
		ResubmitInterval: 200 * time.Millisecond, ResubmitAfter: time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	if pattern == order.PatternXA {
		cfg.OrderDSN, cfg.InventoryDSN, cfg.PaymentDSN = pgtest.DSN(t), pgtest.DSN(t), pgtest.DSN(t)
	}
	for _, f := range tweak {
		f(&cfg)
	}
	sh, err := shop.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { sh.Close(context.Background()) })
	return sh
}

// placeOrders places n orders from conc goroutines without waiting for
// their sagas; after each order it calls after(placedSoFar).
func placeOrders(t *testing.T, sh *shop.Shop, n, conc int, after func(int)) {
	t.Helper()
	var next, placed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				user := []int64{1, 1, 1, 4, 3, 2}[rng.IntN(6)]
				items := []order.Item{{ProductID: 1 + rng.Int64N(4), Quantity: 1 + rng.Int64N(2)}}
				_, err := sh.PlaceOrder(context.Background(), user, items, fmt.Sprintf("it-%d", i), false)
				if err != nil {
					errs <- fmt.Errorf("order %d: %w", i, err)
				}
				after(int(placed.Add(1)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// unfinishedSagas counts sagas still running or compensating.
func unfinishedSagas(ctx context.Context, st dtx.Store) (int, error) {
	counts, err := st.Counts(ctx)
	if err != nil {
		return 0, err
	}
	return counts[dtx.StatusRunning] + counts[dtx.StatusCompensating], nil
}

// waitAllFinal waits until no order is pending and no saga is unfinished
// according to the coordinator's API.
func waitAllFinal(t *testing.T, sh *shop.Shop, c *client.Client, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, timeout, "every order and saga to finish", func() (bool, string) {
		pending, err := sh.Orders.List(ctx, order.Pending)
		if err != nil {
			return false, err.Error()
		}
		res, err := c.List(ctx, dtx.ListFilter{Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		open := res.Counts[dtx.StatusRunning] + res.Counts[dtx.StatusCompensating]
		return len(pending) == 0 && open == 0, fmt.Sprintf("%d orders pending, %d sagas unfinished", len(pending), open)
	})
}

// checkOutcome verifies the shop's invariants and that every order agrees
// with its saga: COMPLETED ⇔ succeeded, CANCELLED ⇔ failed.
func checkOutcome(t *testing.T, sh *shop.Shop, c *client.Client, wantOrders int) {
	t.Helper()
	ctx := context.Background()
	rep, err := sh.Verify(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Violations, "invariant violations")
	require.Equal(t, wantOrders, rep.Orders, "one order per idempotency key")
	require.Equal(t, wantOrders, rep.Completed+rep.Cancelled)
	require.Positive(t, rep.Completed)
	require.Positive(t, rep.Cancelled)
	for st, want := range map[order.Status]dtx.Status{order.Completed: dtx.StatusSucceeded, order.Cancelled: dtx.StatusFailed} {
		orders, err := sh.Orders.List(ctx, st)
		require.NoError(t, err)
		for _, o := range orders {
			d, err := c.Get(ctx, order.GID(o.ID))
			require.NoError(t, err)
			require.Equal(t, want, d.Status, "order %d is %s", o.ID, st)
		}
	}
	t.Logf("%d orders: %d completed, %d cancelled; faults %+v", rep.Orders, rep.Completed, rep.Cancelled, sh.FaultStats())
}

// TestRecovery_SIGKILL kills the coordinator process in the middle of a
// batch of orders, restarts it on the same store, and checks that every
// saga finished and nothing was lost or applied twice.
func TestRecovery_SIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	cases := []struct {
		sk      storeKind
		pattern string
	}{
		{storeKinds[0], order.PatternSaga}, {storeKinds[1], order.PatternSaga}, {storeKinds[2], order.PatternSaga},
		{storeKinds[0], order.PatternTCC},
	}
	for _, tc := range cases {
		sk := tc.sk
		t.Run(sk.name+"/"+tc.pattern, func(t *testing.T) {
			dsn := sk.dsn(t)
			logPath := filepath.Join(t.TempDir(), "coordinator.log")
			coord := startServer(t, "", dsn, logPath)
			addr := coord.addr
			sh := startShop(t, addr, tc.pattern)
			c := client.ForURL("http://"+addr, nil)

			const n, conc = 240, 16
			killed := make(chan struct{})
			var once sync.Once
			placeOrders(t, sh, n, conc, func(placed int) {
				if placed == n/2 {
					once.Do(func() {
						coord.kill() // SIGKILL: no drain, no lease release
						close(killed)
					})
				}
			})
			<-killed

			// The crash left sagas in flight: read the store as the dead
			// process left it.
			st := sk.open(t, dsn)
			open, err := unfinishedSagas(context.Background(), st)
			require.NoError(t, err)
			st.Close()
			require.Positive(t, open, "the kill must interrupt sagas in flight")
			t.Logf("killed the coordinator with %d sagas unfinished", open)

			startServer(t, addr, dsn, logPath)
			waitAllFinal(t, sh, c, 2*time.Minute)
			checkOutcome(t, sh, c, n)
		})
	}
}

// TestRecovery_SIGKILLBetweenPrepareAndCommit runs XA orders with the
// payment's commits slowed down, so that when the coordinator is killed
// branches sit prepared in both services' PostgreSQL databases
// (pg_prepared_xacts). The restarted coordinator finishes each in the
// direction its log says; nothing stays prepared, nothing is lost or
// applied twice.
func TestRecovery_SIGKILLBetweenPrepareAndCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	sk := storeKinds[0]
	dsn := sk.dsn(t)
	logPath := filepath.Join(t.TempDir(), "coordinator.log")
	coord := startServer(t, "", dsn, logPath)
	addr := coord.addr
	sh := startShop(t, addr, order.PatternXA, func(cfg *shop.Config) {
		cfg.PaymentFaults = faults.Config{Rate: 0.5, Kinds: []faults.Kind{faults.Delay}, MinDelay: 1500 * time.Millisecond,
			Delay: 1500 * time.Millisecond, Ops: []dtx.Op{dtx.OpConfirm}, Seed: 3}
		cfg.BranchTimeout = 3 * time.Second
	})
	c := client.ForURL("http://"+addr, nil)

	prepared := func() int {
		n := 0
		for _, db := range []*sql.DB{sh.InventoryDB(), sh.PaymentDB()} {
			var k int
			require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM pg_prepared_xacts WHERE database = current_database()`).Scan(&k))
			n += k
		}
		return n
	}
	const n, conc = 80, 16
	killed := make(chan struct{})
	var once sync.Once
	var inDoubt int
	placeOrders(t, sh, n, conc, func(placed int) {
		if placed == n/2 {
			once.Do(func() {
				coord.kill()
				inDoubt = prepared()
				close(killed)
			})
		}
	})
	<-killed
	require.Positive(t, inDoubt, "the kill must leave branches prepared")
	t.Logf("killed the coordinator with %d XA branches prepared", inDoubt)

	startServer(t, addr, dsn, logPath)
	waitAllFinal(t, sh, c, 2*time.Minute)
	waitFor(t, 30*time.Second, "every prepared branch to finish", func() (bool, string) {
		k := prepared()
		return k == 0, fmt.Sprintf("%d branches prepared", k)
	})
	checkOutcome(t, sh, c, n)
}

// TestRecovery_Takeover runs two coordinators on one PostgreSQL database,
// kills the one the shop talks to, and checks that the survivor finishes
// every saga the dead one had in flight while it is still dead.
func TestRecovery_Takeover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	pg := storeKinds[1]
	dsn := pg.dsn(t)
	logs := t.TempDir()
	a := startServer(t, "", dsn, filepath.Join(logs, "a.log"), "--owner", "coordinator-a")
	b := startServer(t, "", dsn, filepath.Join(logs, "b.log"), "--owner", "coordinator-b")
	addrA, addrB := a.addr, b.addr
	sh := startShop(t, addrA, order.PatternSaga)

	const n = 200
	killed := make(chan struct{})
	var once sync.Once
	st := pg.open(t, dsn)
	defer st.Close()
	placeOrders(t, sh, n, 16, func(placed int) {
		// Kill A from half-way on, at a moment when it has sagas in flight
		// (on a fast run they may all have finished between two
		// placements); at the last placement, kill it whatever.
		if placed < n/2 {
			return
		}
		if open, err := unfinishedSagas(context.Background(), st); placed < n && (err != nil || open == 0) {
			return
		}
		once.Do(func() { a.kill(); close(killed) })
	})
	<-killed
	open, err := unfinishedSagas(context.Background(), st)
	require.NoError(t, err)
	require.Positive(t, open, "the kill must interrupt sagas in flight")
	t.Logf("killed coordinator A with %d sagas unfinished", open)

	// B claims A's sagas once A's leases (1s) expire, and finishes them
	// while A is still dead. (Orders placed after the kill could not reach
	// A and wait, PENDING, in the order service.)
	waitFor(t, time.Minute, "coordinator B to finish coordinator A's sagas", func() (bool, string) {
		open, err := unfinishedSagas(context.Background(), st)
		if err != nil {
			return false, err.Error()
		}
		return open == 0, fmt.Sprintf("%d sagas unfinished", open)
	})

	// A comes back; the order service resubmits the orders it could not
	// submit, and everything ends consistent.
	startServer(t, addrA, dsn, filepath.Join(logs, "a.log"), "--owner", "coordinator-a")
	c := client.ForURL("http://"+addrB, nil)
	waitAllFinal(t, sh, c, 2*time.Minute)
	checkOutcome(t, sh, c, n)
}
