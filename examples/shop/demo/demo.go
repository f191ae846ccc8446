// Package demo is `dtx demo`: a coordinator (SQLite store, HTTP API,
// dashboard, metrics) and the reference shop in one process, orders
// placed with faults injected into every branch call, then every
// invariant verified.
//
//	res, err := demo.Run(ctx, demo.Config{Pattern: "saga", Orders: 50, Concurrency: 8, FaultRate: 0.2, Seed: 1})
//
// Start, (*Demo).Run and (*Demo).Close split Run for callers that keep
// everything serving after the run (dtx demo --hold).
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/cart"
	shopevents "github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Config configures a demo run.
type Config struct {
	// Pattern is one of order.Patterns: saga, tcc, xa (the services on a
	// throwaway PostgreSQL), choreography or saga-async (through an
	// embedded NATS JetStream); or PatternEventSourcing (event-sourced
	// carts whose checkouts place the orders, by saga).
	Pattern string
	// Orders to place, Concurrency of them at once.
	Orders, Concurrency int
	// FaultRate is the probability that a branch call is faulted.
	FaultRate float64
	// Broker carries the choreography's events: "" or BrokerEmbedded
	// (NATS JetStream in this process), BrokerKafka (the Kafka protocol
	// against an in-process test broker) or "kafka://host:port[,…]" (a
	// real Kafka cluster). Only the choreography pattern takes another
	// value than the default.
	Broker string
	// SequentialTCC runs TCC tries and confirms one after another (see
	// shop.Config.SequentialTCC).
	SequentialTCC bool
	// Relay publishes the choreography's outboxes: "" or shop.RelayPolling,
	// or shop.RelayTailing (PostgreSQL's logical replication stream; the
	// services then run on a throwaway PostgreSQL with wal_level=logical).
	// Only the choreography pattern takes RelayTailing.
	Relay string
	// Seed seeds the orders and the faults.
	Seed uint64
	// Dir holds the databases; empty: a temporary directory, removed by
	// Close.
	Dir string
	// QuiesceTimeout bounds the wait for every transaction to finish
	// after the last order (default 2m).
	QuiesceTimeout time.Duration
	// Logger of the services and the coordinator (default: discard).
	Logger *slog.Logger
	// Out receives what is being set up (default: discard).
	Out io.Writer
	// Progress, if set, shows the orders' progress: a bar on a terminal,
	// else a line every 2s (none at all with ProgressTTYOnly).
	Progress        *os.File
	ProgressTTYOnly bool
}

// Validate checks the pattern and the bounds of Orders, Concurrency and
// FaultRate; Start does too.
func (c Config) Validate() error {
	switch {
	case !slices.Contains(order.Patterns, c.Pattern) && c.Pattern != PatternEventSourcing:
		return fmt.Errorf("pattern %q is not available (available: %s, %s)", c.Pattern, strings.Join(order.Patterns, ", "), PatternEventSourcing)
	case c.Orders < 1 || c.Orders > 1_000_000:
		return fmt.Errorf("orders must be between 1 and 1000000")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("concurrency must be between 1 and 1024")
	case c.FaultRate < 0 || c.FaultRate > 1:
		return fmt.Errorf("faults must be a rate between 0 and 1")
	}
	switch c.Relay {
	case "", shop.RelayPolling:
	case shop.RelayTailing:
		if c.Pattern != order.PatternChoreography {
			return fmt.Errorf("relay %s: only the choreography pattern publishes through outbox relays", c.Relay)
		}
	default:
		return fmt.Errorf("relay %q: want %s or %s", c.Relay, shop.RelayPolling, shop.RelayTailing)
	}
	return checkBroker(c.Broker, c.Pattern)
}

// Demo is a started demo: the coordinator and the shop, serving.
type Demo struct {
	cfg     Config
	work    string
	closers []func() // in the order they were opened
	st      dtx.Store
	apiURL  string
	flows   *flow.Store
	sh      *shop.Shop
	carts   *cart.Server // PatternEventSourcing
	urls    map[string]string
	// The per-run key of branch calls: the coordinator signs, the shop's
	// services verify with the public half.
	signer   *callsig.Signer
	verifier *callsig.Verifier
}

// Run starts a demo, runs it and closes it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	d, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Run(ctx)
}

// Start starts the coordinator with its API and the shop, as cfg says.
func Start(ctx context.Context, cfg Config) (*Demo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.QuiesceTimeout <= 0 {
		cfg.QuiesceTimeout = 2 * time.Minute
	}
	d := &Demo{cfg: cfg, work: cfg.Dir}
	if err := d.start(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Demo) onClose(f func()) { d.closers = append(d.closers, f) }

// Close stops everything Start started, last started first, and removes
// the temporary directory.
func (d *Demo) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

func (d *Demo) start(ctx context.Context) error {
	if err := d.workDir(); err != nil {
		return err
	}
	if err := d.callKey(); err != nil {
		return err
	}
	events, owner, transport, err := d.startSagaAsync(ctx)
	if err != nil {
		return err
	}
	if err := d.startCoordinator(ctx, owner, transport); err != nil {
		return err
	}
	// XA needs databases with two-phase commit: the services run on a
	// throwaway PostgreSQL server started from the installed binaries.
	var dsns [3]string
	if d.cfg.Pattern == order.PatternXA || d.cfg.Relay == shop.RelayTailing {
		var opts pgserver.Options
		if d.cfg.Relay == shop.RelayTailing {
			opts.Settings = pgserver.LogicalReplication
		}
		t, err := pgserver.StartTempWith(ctx, opts, "orders", "inventory", "payment")
		if err != nil {
			return fmt.Errorf("the %s needs PostgreSQL for the services' databases: %w", d.postgresUser(), err)
		}
		d.onClose(t.Close)
		copy(dsns[:], t.DSNs)
		fmt.Fprintf(d.cfg.Out, "  services' databases on %s\n", t.Label)
	}
	if d.cfg.Pattern == order.PatternChoreography {
		if events, err = d.startChoreography(ctx); err != nil {
			return err
		}
	}
	if err := d.startShop(ctx, events, dsns); err != nil {
		return err
	}
	if d.cfg.Pattern == PatternEventSourcing {
		return d.startCarts(ctx)
	}
	return nil
}

func (d *Demo) workDir() error {
	if d.work != "" {
		return os.MkdirAll(d.work, 0o755)
	}
	var err error
	if d.work, err = os.MkdirTemp("", "dtx-demo-"); err != nil {
		return err
	}
	work := d.work
	d.onClose(func() { os.RemoveAll(work) })
	return nil
}

// callKey makes the run's branch call key: an Ed25519 key, so the
// services hold only its public half.
func (d *Demo) callKey() error {
	key, err := callsig.Generate(callsig.AlgEd25519, "demo")
	if err != nil {
		return err
	}
	if d.signer, err = callsig.NewSigner(key); err != nil {
		return err
	}
	d.verifier, err = callsig.NewVerifier(key.Public())
	return err
}

// startSagaAsync: for saga-async, branch calls go as commands through an
// embedded NATS JetStream; otherwise over HTTP.
func (d *Demo) startSagaAsync(ctx context.Context) (broker.Broker, string, dtx.Transport, error) {
	if d.cfg.Pattern != order.PatternSagaAsync {
		return nil, "", httptransport.New(nil).WithSigner(d.signer), nil
	}
	nb, tr, owner, err := startSagaAsync(ctx, d.work, d.cfg.Out, d.signer)
	if err != nil {
		return nil, "", nil, err
	}
	d.onClose(func() { nb.Close() })
	d.onClose(func() { tr.Close() })
	return nb, owner, tr, nil
}

// startCoordinator runs the coordinator on its own SQLite file, with its
// HTTP API (and /metrics), plus the reconstructed flows of choreographed
// orders (GET /v1/flows/{gid}).
func (d *Demo) startCoordinator(ctx context.Context, owner string, transport dtx.Transport) error {
	st, err := sqlite.Open(ctx, filepath.Join(d.work, "coordinator.db"), sqlstore.Config{})
	if err != nil {
		return err
	}
	d.st = st
	d.onClose(func() { st.Close() })
	mx := metrics.New()
	coord, err := coordinator.New(st, transport, coordinator.Config{
		Owner: owner, Logger: d.cfg.Logger, RetryBase: 50 * time.Millisecond, RetryMax: time.Second, LeaseTTL: 5 * time.Second,
		Observer: mx,
	})
	if err != nil {
		return err
	}
	if err := coord.Start(ctx); err != nil {
		return err
	}
	d.onClose(func() { coord.Close(context.Background()) })
	mx.Watch(coord)
	coordAPI := server.New(coord, server.WithMetrics(mx.Handler()))
	flowDB, err := sqlitedb.Open(ctx, filepath.Join(d.work, "flows.db"), 4)
	if err != nil {
		return err
	}
	d.onClose(func() { flowDB.Close() })
	d.flows = flow.NewStore(flowDB)
	if err := d.flows.Migrate(ctx); err != nil {
		return err
	}
	apiURL, stopAPI, err := loopback.Serve(flow.Mount(coordAPI, d.flows))
	if err != nil {
		return err
	}
	d.apiURL = apiURL
	d.onClose(stopAPI)
	d.onClose(coordAPI.CloseStreams) // first: open dashboards must not hold up the shutdown
	return nil
}

// startChoreography: the services' events go through NATS JetStream,
// embedded in this process with its files beside the databases (or
// through Kafka, Config.Broker), and are recorded as flows.
func (d *Demo) startChoreography(ctx context.Context) (broker.Broker, error) {
	var nb broker.Broker
	var label string
	if spec := d.cfg.Broker; spec != "" && spec != BrokerEmbedded {
		var err error
		if nb, label, err = d.startKafka(ctx, spec); err != nil {
			return nil, err
		}
	} else {
		b, err := natsbroker.OpenEmbedded(ctx, filepath.Join(d.work, "nats"), natsbroker.Config{})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		d.onClose(func() { b.Close() })
		nb, label = b, fmt.Sprintf("an embedded NATS JetStream (files in %s)", filepath.Join(d.work, "nats"))
	}
	subs, err := flow.Record(ctx, nb, d.flows, shopevents.Topics...)
	if err != nil {
		return nil, err
	}
	d.onClose(func() {
		for _, s := range subs {
			s.Close()
		}
	})
	fmt.Fprintf(d.cfg.Out, "  events through %s\n", label)
	return nb, nil
}

// startShop starts the shop: three services, three databases, faults in
// every transaction endpoint.
// postgresUser names what needs PostgreSQL, for an error.
func (d *Demo) postgresUser() string {
	if d.cfg.Relay == shop.RelayTailing {
		return "tailing relay"
	}
	return "xa pattern"
}

func (d *Demo) startShop(ctx context.Context, events broker.Broker, dsns [3]string) error {
	c := d.cfg
	fc := func(salt uint64) faults.Config {
		return faults.Config{Rate: c.FaultRate, Kinds: faults.AllKinds, Delay: 800 * time.Millisecond, Seed: int64(c.Seed*7919 + salt)}
	}
	sh, err := shop.Start(ctx, shop.Config{
		Dir: d.work, CoordinatorURL: d.apiURL, Pattern: shopPattern(c.Pattern), Broker: events,
		OrderDSN: dsns[0], InventoryDSN: dsns[1], PaymentDSN: dsns[2],
		ResolveInterval: 2 * time.Second,
		OrderFaults:     fc(1), InventoryFaults: fc(2), PaymentFaults: fc(3),
		BranchTimeout: 500 * time.Millisecond, SagaTimeout: 60 * time.Second,
		ResubmitInterval: time.Second, ResubmitAfter: 3 * time.Second, WaitTimeout: 30 * time.Second,
		Logger: c.Logger, CallVerifier: d.verifier, SequentialTCC: c.SequentialTCC, Relay: c.Relay,
	})
	if err != nil {
		return err
	}
	d.sh = sh
	d.onClose(func() { sh.Close(context.Background()) })
	d.urls = map[string]string{"coordinator": d.apiURL, "order": sh.OrderURL(), "inventory": sh.InventoryURL(), "payment": sh.PaymentURL()}
	out := c.Out
	fmt.Fprintf(out, "dtx demo: %s pattern, %d orders, %d at a time, faults %.0f%% of branch calls, seed %d\n", c.Pattern, c.Orders, c.Concurrency, c.FaultRate*100, c.Seed)
	fmt.Fprintf(out, "  coordinator API %s  (try: curl %s/v1/transactions?limit=5)\n", d.apiURL, d.apiURL)
	fmt.Fprintf(out, "  branch calls signed with a per-run Ed25519 key (id %s); the services refuse unsigned ones (401)\n", d.signer.KeyID())
	fmt.Fprintf(out, "  dashboard %s/ui/  (live; --hold keeps it open after the run)\n", d.apiURL)
	fmt.Fprintf(out, "  order %s  inventory %s  payment %s\n  databases in %s\n", sh.OrderURL(), sh.InventoryURL(), sh.PaymentURL(), d.work)
	return nil
}
