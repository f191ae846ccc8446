package shop

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/redislock"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/examples/shop/internal/shopxa"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/examples/shop/verify"
	"github.com/dtxhq/dtx/participant/xa"
)

// DefaultAddr is where a service listens when its address is empty: a free
// loopback port.
const DefaultAddr = "127.0.0.1:0"

// DefaultProducts are seeded into an empty inventory. Prices are cents.
var DefaultProducts = []inventory.Product{
	{ID: 1, Name: "Widget", Price: 100, Available: 1000},
	{ID: 2, Name: "Gadget", Price: 200, Available: 1000},
	{ID: 3, Name: "Gizmo", Price: 1500, Available: 50},
	{ID: 4, Name: "Doohickey", Price: 2500, Available: 5},
	{ID: 5, Name: "Sold-out thing", Price: 999, Available: 0},
}

// DefaultAccounts are seeded into an empty payment database. Balances are
// cents. User 2 is always declined (payment.DeclinedUserID); user 3 is
// nearly broke.
var DefaultAccounts = []payment.Account{
	{UserID: 1, Balance: 1_000_000},
	{UserID: 2, Balance: 1_000_000},
	{UserID: 3, Balance: 5_000},
	{UserID: 4, Balance: 1_000_000},
}

// Config configures a Shop. Zero values take the defaults.
type Config struct {
	// Dir holds the SQLite files (order.db, inventory.db, payment.db) of
	// the services without a DSN.
	Dir string
	// OrderDSN, InventoryDSN and PaymentDSN select Postgres for a service
	// ("postgres://..."); empty means SQLite in Dir. The three may name the
	// same database: table names do not overlap.
	OrderDSN, InventoryDSN, PaymentDSN string
	// OrderAddr, InventoryAddr and PaymentAddr are the listen addresses
	// (default DefaultAddr). Fixed ports keep saga URLs valid across a
	// restart.
	OrderAddr, InventoryAddr, PaymentAddr string
	// Coordinator submits the sagas. If nil, a client for CoordinatorURL is
	// used; one of the two is required.
	Coordinator    order.Coordinator
	CoordinatorURL string
	// Pattern is how orders are fulfilled: order.PatternSaga (default),
	// order.PatternTCC (reserve, then confirm or cancel) or order.PatternXA
	// (two-phase commit; needs PostgreSQL or MySQL for the inventory and
	// payment databases).
	Pattern string
	// Broker carries the events of the choreography pattern and the branch
	// commands of the saga-async pattern (required by them; with another
	// pattern, choreographed orders already placed still finish through
	// it); the shop does not close it.
	Broker broker.Broker
	// ResolveInterval is how often the inventory and payment services look
	// for XA branches left prepared and TCC reservations left RESERVED whose
	// transaction has ended (default 5s; see Shop.ResolverStats).
	ResolveInterval time.Duration
	// OrderFaults, InventoryFaults and PaymentFaults inject faults into each
	// service's saga endpoints (default: none).
	OrderFaults, InventoryFaults, PaymentFaults faults.Config
	// Products and Accounts are seeded into empty databases (defaults
	// DefaultProducts, DefaultAccounts).
	Products []inventory.Product
	Accounts []payment.Account
	// BranchTimeout and SagaTimeout go into every saga (zero: the
	// coordinator's defaults).
	BranchTimeout, SagaTimeout time.Duration
	// SequentialTCC runs TCC tries and confirms one after another, product
	// (inventory) then point (payment), as the seeds do (see
	// order.Config.SequentialTCC). Default: in parallel.
	SequentialTCC bool
	// TCCOnConfirmFailure is the TCC orders' on_confirm_failure policy
	// (seed F9; see order.Config.TCCOnConfirmFailure). Default "retry".
	TCCOnConfirmFailure string
	// ResubmitInterval and ResubmitAfter tune the order service's
	// resubmitter (defaults: order.DefaultResubmitInterval and
	// order.DefaultResubmitAfter).
	ResubmitInterval, ResubmitAfter time.Duration
	// WaitTimeout bounds POST /orders?wait=true (default
	// order.DefaultWaitTimeout).
	WaitTimeout time.Duration
	// ConsumerMaxAttempts and ConsumerRetryDelay are the choreography's
	// retry policy for an event whose handling fails: the attempts before
	// it is dead-lettered (default DefaultConsumerMaxAttempts; the seeds
	// use 3) and the least wait between two of them (default
	// DefaultConsumerRetryDelay; the seeds use 1s). A malformed event is
	// dead-lettered at once.
	ConsumerMaxAttempts int
	ConsumerRetryDelay  time.Duration
	// OutboxMaxAttempts is how many failed publishes of one event the
	// choreography's outbox relays allow before giving it up as FAILED
	// into the outbox's dead letters (default 0: retry until the broker
	// takes it; the seeds use 5).
	OutboxMaxAttempts int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// CallVerifier, if set, makes every service refuse (401) branch calls
	// and saga-async commands not signed by the coordinator (package
	// callsig); the coordinator signs with the matching key. Nil accepts
	// unsigned calls.
	CallVerifier *callsig.Verifier
	// LockURL, if set (redis://host:port[/db] or unix:///path), guards each
	// placement of a draft order (POST /order/place) with a Redis lock on
	// "order:{id}" (package redislock): a concurrent placement of the same
	// order is refused with 409 while the first runs. Start fails if the
	// Redis does not answer.
	LockURL string
	// LockTTL is the lock's lifetime (default redislock.DefaultTTL); it
	// must exceed the longest placement.
	LockTTL time.Duration
	// Relay says how the choreography's outboxes are published:
	// RelayPolling (the default: outbox.Relay reads the table) or
	// RelayTailing (outbox/pgtail reads PostgreSQL's logical replication
	// stream, one slot per service; every service needs a PostgreSQL DSN
	// with wal_level=logical, and OutboxMaxAttempts must be 0: a tailing
	// relay never gives a message up).
	Relay string
}

// The relays of Config.Relay.
const (
	RelayPolling = "polling"
	RelayTailing = "tailing"
)

// lockMargin is what a placement may take besides waiting for its
// outcome (price lookup, database writes), for the LockTTL check.
const lockMargin = 10 * time.Second

// Shop is a running shop: three services, their databases and servers.
type Shop struct {
	// The services, for direct use and tests.
	Orders    *order.Service
	Inventory *inventory.Service
	Payment   *payment.Service

	orderDB, inventoryDB, paymentDB             *sql.DB
	orderDialect, invDialect, payDialect        appdb.Dialect
	events                                      map[string]*eventService // choreography
	eventsReady                                 atomic.Bool              // events is set
	sagaSubs                                    []broker.Subscription    // saga-async
	orderURL, inventoryURL, paymentURL          string
	orderFaults, inventoryFaults, paymentFaults *faults.Injector

	resolvers map[string]*shopxa.Resolver // by service

	servers []*http.Server
	stop    context.CancelFunc // stops the resubmitter
	wg      sync.WaitGroup
	client  *order.Client
	log     *slog.Logger
	lock    *redislock.Locker // nil without Config.LockURL

	closeOnce sync.Once
	closeErr  error
}

// Start opens and prepares the databases and starts the three services. The
// shop runs until Close.
func Start(ctx context.Context, cfg Config) (_ *Shop, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	coord := cfg.Coordinator
	if coord == nil && cfg.CoordinatorURL != "" {
		coord = client.ForURL(cfg.CoordinatorURL, nil)
	}
	if coord == nil && cfg.Pattern != order.PatternChoreography {
		return nil, errors.New("shop: Config.Coordinator or Config.CoordinatorURL is required")
	}
	if cfg.Pattern == order.PatternChoreography && cfg.Broker == nil {
		return nil, errors.New("shop: the choreography pattern needs Config.Broker")
	}
	if cfg.Pattern == order.PatternSagaAsync && cfg.Broker == nil {
		return nil, errors.New("shop: the saga-async pattern needs Config.Broker")
	}
	if cfg.Dir == "" && (cfg.OrderDSN == "" || cfg.InventoryDSN == "" || cfg.PaymentDSN == "") {
		return nil, errors.New("shop: Config.Dir is required for SQLite databases")
	}
	s := &Shop{log: cfg.Logger}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()

	// Fault injectors first: a bad fault config fails before anything opens.
	if s.orderFaults, err = faults.New(cfg.OrderFaults); err != nil {
		return nil, fmt.Errorf("shop: order faults: %w", err)
	}
	if s.inventoryFaults, err = faults.New(cfg.InventoryFaults); err != nil {
		return nil, fmt.Errorf("shop: inventory faults: %w", err)
	}
	if s.paymentFaults, err = faults.New(cfg.PaymentFaults); err != nil {
		return nil, fmt.Errorf("shop: payment faults: %w", err)
	}

	var lock order.Locker
	if cfg.LockURL != "" {
		// The lock must outlive the slowest placement it guards: the wait
		// for the outcome, plus the price lookup and database writes.
		ttl := cmp.Or(cfg.LockTTL, redislock.DefaultTTL)
		if longest := cmp.Or(cfg.WaitTimeout, order.DefaultWaitTimeout) + lockMargin; ttl < longest {
			return nil, fmt.Errorf("shop: lock TTL %v must be at least the order wait timeout plus %v (%v)", ttl, lockMargin, longest)
		}
		if s.lock, err = redislock.New(cfg.LockURL, cfg.LockTTL); err != nil {
			return nil, fmt.Errorf("shop: lock: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.lock.Ping(pctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("shop: lock %s: %w", cfg.LockURL, err)
		}
		lock = s.lock
	}

	// Inventory and payment.
	invDB, invDialect, err := shopdb.Open(ctx, cfg.InventoryDSN, filepath.Join(cfg.Dir, "inventory.db"))
	if err != nil {
		return nil, fmt.Errorf("shop: inventory database: %w", err)
	}
	s.inventoryDB, s.invDialect = invDB, invDialect
	s.Inventory = inventory.New(invDB, inventory.Config{Dialect: invDialect, Logger: cfg.Logger, CallVerifier: cfg.CallVerifier})
	if err := s.Inventory.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.Inventory.Seed(ctx, orDefault(cfg.Products, DefaultProducts)); err != nil {
		return nil, err
	}
	payDB, payDialect, err := shopdb.Open(ctx, cfg.PaymentDSN, filepath.Join(cfg.Dir, "payment.db"))
	if err != nil {
		return nil, fmt.Errorf("shop: payment database: %w", err)
	}
	s.paymentDB, s.payDialect = payDB, payDialect
	if cfg.Pattern == order.PatternXA && (!shopxa.Supports(invDialect) || !shopxa.Supports(payDialect)) {
		return nil, fmt.Errorf("shop: the %s pattern needs PostgreSQL or MySQL databases for inventory and payment (InventoryDSN, PaymentDSN); got %v and %v",
			order.PatternXA, invDialect, payDialect)
	}
	s.Payment = payment.New(payDB, payment.Config{Dialect: payDialect, Logger: cfg.Logger, CallVerifier: cfg.CallVerifier})
	if err := s.Payment.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.Payment.Seed(ctx, orDefault(cfg.Accounts, DefaultAccounts)); err != nil {
		return nil, err
	}

	// Listen before building the order service: its sagas carry the URLs.
	invLn, err := listen(cfg.InventoryAddr)
	if err != nil {
		return nil, fmt.Errorf("shop: inventory: %w", err)
	}
	s.inventoryURL = s.serve(invLn, s.withDeadLetters("inventory", s.inventoryFaults.Wrap(s.Inventory.Handler())))
	payLn, err := listen(cfg.PaymentAddr)
	if err != nil {
		return nil, fmt.Errorf("shop: payment: %w", err)
	}
	s.paymentURL = s.serve(payLn, s.withDeadLetters("payment", s.paymentFaults.Wrap(s.Payment.Handler())))
	orderLn, err := listen(cfg.OrderAddr)
	if err != nil {
		return nil, fmt.Errorf("shop: order: %w", err)
	}
	s.orderURL = "http://" + orderLn.Addr().String()

	// Order.
	orderDB, orderDialect, err := shopdb.Open(ctx, cfg.OrderDSN, filepath.Join(cfg.Dir, "order.db"))
	if err != nil {
		orderLn.Close()
		return nil, fmt.Errorf("shop: order database: %w", err)
	}
	s.orderDB, s.orderDialect = orderDB, orderDialect
	var onPlace func(context.Context, *sql.Tx, *order.Order) error
	var afterPlace func(*order.Order)
	// With a broker the choreography's relays and consumers run whatever
	// the pattern of new orders, so that choreographed orders placed before
	// a restart with another pattern still finish.
	if cfg.Broker != nil {
		dsns := map[string]string{"order": cfg.OrderDSN, "inventory": cfg.InventoryDSN, "payment": cfg.PaymentDSN}
		if err := s.startChoreography(ctx, cfg.Broker, eventPolicyOf(cfg), cfg.Relay, dsns); err != nil {
			orderLn.Close()
			return nil, err
		}
		onPlace = s.placeEvent
		afterPlace = func(*order.Order) { s.events["order"].relay.Notify() }
	}
	s.Orders, err = order.New(orderDB, order.Config{
		OnPlace:             onPlace,
		CallVerifier:        cfg.CallVerifier,
		AfterPlace:          afterPlace,
		Dialect:             orderDialect,
		URL:                 s.orderURL,
		InventoryURL:        s.inventoryURL,
		PaymentURL:          s.paymentURL,
		Coordinator:         coord,
		Pattern:             cfg.Pattern,
		SagaTimeout:         cfg.SagaTimeout,
		BranchTimeout:       cfg.BranchTimeout,
		SequentialTCC:       cfg.SequentialTCC,
		TCCOnConfirmFailure: cfg.TCCOnConfirmFailure,
		WaitTimeout:         cfg.WaitTimeout,
		ResubmitInterval:    cfg.ResubmitInterval,
		ResubmitAfter:       cfg.ResubmitAfter,
		Logger:              cfg.Logger,
		Lock:                lock,
	})
	if err != nil {
		orderLn.Close()
		return nil, fmt.Errorf("shop: %w", err)
	}
	if err := s.Orders.Migrate(ctx); err != nil {
		orderLn.Close()
		return nil, err
	}
	s.serve(orderLn, s.withDeadLetters("order", s.orderFaults.Wrap(s.Orders.Handler())))

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	if s.events != nil {
		if err := s.subscribeChoreography(ctx, runCtx, cfg.Broker); err != nil {
			return nil, err
		}
	}
	if cfg.Pattern == order.PatternSagaAsync {
		if err := s.subscribeSagaAsync(ctx, cfg.Broker, cfg.CallVerifier); err != nil {
			return nil, err
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.Orders.Run(runCtx)
	}()
	// XA branches left prepared and stale TCC reservations: resolved from
	// the coordinator's log.
	if src, ok := coord.(shopxa.StatusSource); ok {
		s.resolvers = map[string]*shopxa.Resolver{
			"inventory": s.Inventory.Resolver(src),
			"payment":   s.Payment.Resolver(src),
		}
		for _, r := range s.resolvers {
			r.Interval = cfg.ResolveInterval
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r.Run(runCtx)
			}()
		}
	}

	s.client = &order.Client{URL: s.orderURL, HTTP: &http.Client{}}
	s.log.Info("shop started", "order", s.orderURL, "inventory", s.inventoryURL, "payment", s.paymentURL)
	return s, nil
}

// ResolverStats returns, per service, what its resolver did (empty when
// the coordinator cannot be asked).
func (s *Shop) ResolverStats() map[string]shopxa.Stats {
	out := map[string]shopxa.Stats{}
	for name, r := range s.resolvers {
		out[name] = r.Stats()
	}
	return out
}

func orDefault[T any](v, def []T) []T {
	if len(v) == 0 {
		return def
	}
	return v
}

func listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", cmp.Or(addr, DefaultAddr))
}

// serve serves h on ln in the background and returns the base URL.
func (s *Shop) serve(ln net.Listener, h http.Handler) string {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("shop server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return "http://" + ln.Addr().String()
}

// OrderURL is the order service's base URL.
func (s *Shop) OrderURL() string { return s.orderURL }

// InventoryURL is the inventory service's base URL.
func (s *Shop) InventoryURL() string { return s.inventoryURL }

// PaymentURL is the payment service's base URL.
func (s *Shop) PaymentURL() string { return s.paymentURL }

// OrderDB is the order service's database.
func (s *Shop) OrderDB() *sql.DB { return s.orderDB }

// InventoryDB is the inventory service's database.
func (s *Shop) InventoryDB() *sql.DB { return s.inventoryDB }

// PaymentDB is the payment service's database.
func (s *Shop) PaymentDB() *sql.DB { return s.paymentDB }

// Verify checks the invariants over the three databases (see package
// verify).
//
// On databases that run XA it also reports every branch still prepared:
// once transactions have finished, none may be left holding locks.
func (s *Shop) Verify(ctx context.Context) (*verify.Report, error) {
	rep, err := verify.Check(ctx, s.orderDB, s.inventoryDB, s.paymentDB)
	if err != nil {
		return nil, err
	}
	for _, svc := range []struct {
		name string
		db   *sql.DB
		d    appdb.Dialect
		tbl  string
	}{
		{"inventory", s.inventoryDB, s.invDialect, inventory.BarrierTable},
		{"payment", s.paymentDB, s.payDialect, payment.BarrierTable},
	} {
		if !shopxa.Supports(svc.d) {
			continue
		}
		brs, err := (&shopxa.Endpoints{DB: svc.db, Dialect: svc.d, Table: svc.tbl}).InDoubt(ctx)
		if err != nil {
			return nil, fmt.Errorf("shop: verify %s: %w", svc.name, err)
		}
		for _, br := range brs {
			rep.Violations = append(rep.Violations, fmt.Sprintf("%s: XA branch %s (gid %s) is still prepared", svc.name, xa.XID(br), br.GID))
		}
	}
	dead, err := s.choreographyViolations(ctx)
	if err != nil {
		return nil, fmt.Errorf("shop: verify: %w", err)
	}
	rep.Violations = append(rep.Violations, dead...)
	return rep, nil
}

// FaultStats counts the faults injected so far, per service.
type FaultStats struct {
	Order     faults.Stats `json:"order"`
	Inventory faults.Stats `json:"inventory"`
	Payment   faults.Stats `json:"payment"`
}

// Total is the number of faults injected in all services.
func (f FaultStats) Total() int64 {
	return f.Order.Faults() + f.Inventory.Faults() + f.Payment.Faults()
}

// FaultStats returns the fault counts so far.
func (s *Shop) FaultStats() FaultStats {
	return FaultStats{
		Order:     s.orderFaults.Stats(),
		Inventory: s.inventoryFaults.Stats(),
		Payment:   s.paymentFaults.Stats(),
	}
}

// PlaceOrder places an order over HTTP, as a client of the shop would.
// idemKey may be empty; with wait it returns once the saga has finished (or
// the order service's wait timeout passed). Errors from the service are
// *order.HTTPError.
func (s *Shop) PlaceOrder(ctx context.Context, userID int64, items []order.Item, idemKey string, wait bool) (*order.Order, error) {
	return s.client.Place(ctx, order.PlaceRequest{UserID: userID, Items: items}, idemKey, wait)
}

// Close stops the resubmitter, shuts the servers down gracefully (until ctx
// is done, then abruptly) and closes the databases. It is idempotent.
func (s *Shop) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
		)
		for _, es := range s.events {
			if err := es.close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := s.closeSagaAsync(); err != nil {
			errs = append(errs, err)
		}
		for _, srv := range s.servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Shutdown(ctx); err != nil {
					srv.Close()
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		s.wg.Wait()
		for _, db := range []*sql.DB{s.orderDB, s.inventoryDB, s.paymentDB} {
			if db != nil {
				if err := db.Close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if s.lock != nil {
			if err := s.lock.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
