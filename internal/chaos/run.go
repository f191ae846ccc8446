package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for services on PostgreSQL

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/load"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/verify"
	"github.com/dtxhq/dtx/internal/dbproc"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// Config configures a run.
type Config struct {
	// Exe is the dtx binary, run as `dtx server` and `dtx shop`.
	Exe string
	// Dir is the work directory: databases, NATS files, logs.
	Dir string
	// Duration of the load and the faults.
	Duration time.Duration
	// Pattern: PatternSaga, PatternTCC, PatternChoreography or PatternMixed
	// (the shop switches pattern at each restart: saga, tcc, choreography).
	Pattern string
	// StoreDSN is the coordinators' store: empty for SQLite in Dir, or a
	// postgres:// DSN shared by all coordinators.
	StoreDSN string
	// ServiceDSNs are the order, inventory and payment databases; empty
	// for SQLite files in Dir.
	ServiceDSNs [3]string
	// TempPostgres runs the store and the services' databases on a
	// throwaway PostgreSQL server started from the installed binaries
	// (replacing StoreDSN and ServiceDSNs).
	TempPostgres bool
	// Topology is TopologySingle (the default when empty) or TopologyHA:
	// the store and the services' databases on a pg_auto_failover cluster
	// (replacing StoreDSN, ServiceDSNs and TempPostgres), with database
	// failovers and store partitions among the faults.
	Topology string
	// Coordinators is how many coordinator processes run (more than one
	// needs a PostgreSQL store).
	Coordinators int
	// Rate is orders per second (open loop) unless Concurrency is set.
	Rate float64
	// Concurrency, if positive, runs that many clients that each wait for
	// an order's outcome before placing the next (closed loop).
	Concurrency int
	// FaultRate is the share of branch calls and deliveries the shop
	// faults (fail, delay, lose).
	FaultRate float64
	// Seed seeds the orders, the fault plan and the shop's injectors.
	Seed uint64
	// QuiesceTimeout bounds the wait for recovery after the faults stop.
	QuiesceTimeout time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Result is the outcome of a run; its JSON form is a contract for scripts.
type Result struct {
	Pattern      string           `json:"pattern"`
	Topology     string           `json:"topology"`
	Store        string           `json:"store"`
	Coordinators int              `json:"coordinators"`
	Seed         uint64           `json:"seed"`
	DurationS    float64          `json:"duration_s"`
	Faults       map[string]int64 `json:"faults"`
	Planned      []string         `json:"planned_faults"`
	Missing      []string         `json:"missing_faults,omitempty"`
	Orders       int              `json:"orders"`
	Completed    int              `json:"completed"`
	Cancelled    int              `json:"cancelled"`
	// ByPattern counts orders by pattern, then by status.
	ByPattern map[string]map[string]int `json:"by_pattern"`
	Stuck     int                       `json:"stuck"`
	// Violations counts broken invariants: the verifier's, orders that
	// disagree with their transaction, duplicate orders per key, dead
	// letters, and overlapping coordinators.
	Violations    int     `json:"violations"`
	Requests      int64   `json:"requests"`
	ClientRetries int64   `json:"client_retries"`
	RecoveryS     float64 `json:"recovery_s"`
	// BrokerResumed counts broker restarts after which choreographed
	// orders were seen to finish again through the same shop process.
	BrokerResumed int `json:"broker_resumed,omitempty"`
	// PGFailoverS are the PostgreSQL failovers' times (kill of the primary
	// until the standby took writes), in seconds (ha topology).
	PGFailoverS   []float64 `json:"pg_failover_s,omitempty"`
	HA            *HAReport `json:"ha,omitempty"`
	ViolationList []string  `json:"violation_details,omitempty"`
	StuckList     []string  `json:"stuck_details,omitempty"`
	Dir           string    `json:"dir,omitempty"`
	OK            bool      `json:"ok"`
}

// Run runs the chaos test described by cfg.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Coordinators < 1 {
		cfg.Coordinators = 1
	}
	if !slices.Contains(Patterns, cfg.Pattern) {
		return nil, fmt.Errorf("chaos: pattern %q: want one of %s", cfg.Pattern, strings.Join(Patterns, ", "))
	}
	if cfg.TempPostgres {
		t, err := pgserver.StartTemp(ctx, "coordinator", "orders", "inventory", "payment")
		if err != nil {
			return nil, err
		}
		defer t.Close()
		cfg.StoreDSN = t.DSNs[0]
		cfg.ServiceDSNs = [3]string{t.DSNs[1], t.DSNs[2], t.DSNs[3]}
		fmt.Fprintf(cfg.Log, "store and services' databases on %s\n", t.Label)
	}
	topo, err := startTopology(ctx, &cfg, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer topo.close()
	if cfg.Coordinators > 1 && cfg.StoreDSN == "" {
		return nil, errors.New("chaos: several coordinators need a shared PostgreSQL store")
	}
	r := &runner{cfg: cfg, t0: time.Now(), rng: rand.New(rand.NewPCG(cfg.Seed, 0xc4a05)),
		injected: map[Kind]int64{}, topo: topo}
	defer r.shutdown()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type runner struct {
	cfg  Config
	t0   time.Time
	rng  *rand.Rand
	topo *topology

	logs, shopDir, statsDir string
	callKeyFile             string // the run's branch call key, shared by coordinators and shop
	coords                  []*proc
	shop                    *proc
	shopFaults              float64 // fault rate of the next shop incarnation
	coordURL                string
	orderURL                string
	addrs                   [3]string // order, inventory, payment
	proxy                   *http.Server

	natsDir, natsAddr string
	nats              *natsbroker.Broker

	injected   map[Kind]int64 // process faults and duplicates
	reconnects int            // broker restarts after which the flows resumed
	problems   []string       // violations seen while injecting
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "[%6.1fs] %s\n", time.Since(r.t0).Seconds(), fmt.Sprintf(format, args...))
}

// anyPort asks the kernel for a port: a process's first incarnation
// listens on it and writes the address it got to its ready file; later
// incarnations listen on that same address, which clients were given.
// (A port guessed free and closed again could be taken by a stranger
// before the process binds it.)
const anyPort = "127.0.0.1:0"

// readyAddrs reads the addresses a process wrote to its ready file
// (whitespace-separated, with or without http://).
func readyAddrs(path string, want int) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	if len(f) != want {
		return nil, fmt.Errorf("ready file %s: want %d addresses, got %q", path, want, b)
	}
	for i := range f {
		f[i] = strings.TrimPrefix(f[i], "http://")
	}
	return f, nil
}

func (r *runner) usesCoordinator() bool { return r.cfg.Pattern != PatternChoreography }
func (r *runner) usesBroker() bool {
	return r.cfg.Pattern == PatternChoreography || r.cfg.Pattern == PatternMixed
}

// shopPattern is the pattern of new orders after the shop's start-th start.
func (r *runner) shopPattern(start int) string {
	if r.cfg.Pattern == PatternMixed {
		return mixedRotation[start%len(mixedRotation)]
	}
	return r.cfg.Pattern
}

func (r *runner) setup(ctx context.Context) error {
	c := r.cfg
	r.logs, r.shopDir, r.statsDir = filepath.Join(c.Dir, "logs"), filepath.Join(c.Dir, "shop"), filepath.Join(c.Dir, "stats")
	for _, d := range []string{r.logs, r.shopDir, r.statsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := r.writeCallKey(); err != nil {
		return err
	}
	if r.usesBroker() && r.topo.broker == nil {
		r.natsAddr = anyPort
		r.natsDir = filepath.Join(c.Dir, "nats")
		if err := r.openNATS(ctx); err != nil {
			return err
		}
		// Restarts of the broker listen where the first one did.
		r.natsAddr = strings.TrimPrefix(r.nats.ClientURL(), "nats://")
		r.logf("embedded NATS JetStream on nats://%s (files in %s)", r.natsAddr, r.natsDir)
	}
	if r.usesCoordinator() {
		store := c.StoreDSN
		if store == "" {
			store = "sqlite://" + filepath.Join(c.Dir, "coordinator.db")
		}
		var urls []string
		for i := range c.Coordinators {
			addr := anyPort
			name := fmt.Sprintf("coordinator-%d", i+1)
			store, err := r.topo.coordinatorStore(i, store)
			if err != nil {
				return err
			}
			p := &proc{
				name: name, exe: c.Exe, ready: filepath.Join(c.Dir, name+".ready"), logPath: filepath.Join(r.logs, name+".log"),
				args: func(_, inc int) []string {
					return []string{"server", "--listen", addr, "--store", store,
						"--owner", fmt.Sprintf("c%d-%d", i+1, inc), "--lease-ttl", "2s",
						"--retry-base", "50ms", "--retry-max", "1s", "--shutdown-timeout", "3s",
						"--log-level", "warn", "--ready-file", filepath.Join(c.Dir, name+".ready"),
						"--call-key-file", r.callKeyFile}
				},
			}
			if err := p.start(ctx); err != nil {
				return err
			}
			got, err := readyAddrs(p.ready, 1)
			if err != nil {
				return err
			}
			addr = got[0] // restarts listen here (args reads addr)
			r.coords = append(r.coords, p)
			urls = append(urls, "http://"+addr)
		}
		r.coordURL = urls[0]
		if len(urls) > 1 {
			// One address for the shop, in front of all coordinators.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			r.proxy = &http.Server{Handler: newFailover(urls), ReadHeaderTimeout: 10 * time.Second}
			go r.proxy.Serve(ln)
			r.coordURL = "http://" + ln.Addr().String()
		}
		r.logf("%d coordinator process(es) on %s, store %s", len(urls), strings.Join(urls, ", "), storeLabel(store))
	}
	for i := range r.addrs {
		r.addrs[i] = anyPort
	}
	r.shopFaults = c.FaultRate
	r.shop = &proc{
		name: "shop", exe: c.Exe, ready: filepath.Join(c.Dir, "shop.ready"), logPath: filepath.Join(r.logs, "shop.log"),
		args: r.shopArgs,
	}
	if err := r.shop.start(ctx); err != nil {
		return err
	}
	got, err := readyAddrs(r.shop.ready, len(r.addrs))
	if err != nil {
		return err
	}
	copy(r.addrs[:], got) // restarts listen here (shopArgs reads r.addrs)
	r.orderURL = "http://" + r.addrs[0]
	r.logf("shop (order %s, inventory %s, payment %s), pattern %s, faults %.0f%%", r.addrs[0], r.addrs[1], r.addrs[2], r.shopPattern(0), c.FaultRate*100)
	return nil
}

// storeLabel is the store's DSN to show, without its password.
func storeLabel(dsn string) string { return open.RedactDSN(dsn) }

// shopArgs is the command line of the shop's start-th start (its pattern,
// so that the rotation of a mixed run follows the fault plan however many
// attempts a restart takes) and inc-th process (its stats file).
func (r *runner) shopArgs(start, inc int) []string {
	c := r.cfg
	args := []string{"shop", "--pattern", r.shopPattern(start), "--dir", r.shopDir,
		"--order-addr", r.addrs[0], "--inventory-addr", r.addrs[1], "--payment-addr", r.addrs[2],
		"--faults", fmt.Sprint(r.shopFaults), "--fault-kinds", "all", "--fault-delay", (r.topo.branchTimeout() * 6 / 5).String(),
		"--seed", fmt.Sprint(int64(c.Seed) + int64(start)*101),
		"--branch-timeout", r.topo.branchTimeout().String(), "--saga-timeout", "2m",
		"--ready-file", r.shop.ready, "--stats-file", filepath.Join(r.statsDir, fmt.Sprintf("shop-%d.json", inc)),
		"--log-level", "warn", "--coordinator=" + r.coordURL, "--call-key-file", r.callKeyFile}
	switch {
	case r.usesBroker() && r.topo.broker != nil:
		args = append(args, "--broker", r.topo.broker.url(), "--broker-replicas", fmt.Sprint(BrokerReplicas))
	case r.usesBroker():
		args = append(args, "--broker", "nats://"+r.natsAddr)
	}
	for i, flag := range []string{"--order-db", "--inventory-db", "--payment-db"} {
		if c.ServiceDSNs[i] != "" {
			args = append(args, flag, c.ServiceDSNs[i])
		}
	}
	return args
}

func (r *runner) openNATS(ctx context.Context) error {
	nb, err := natsbroker.OpenEmbedded(ctx, r.natsDir, natsbroker.Config{Listen: r.natsAddr})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	r.nats = nb
	return nil
}

// inject performs one process fault.
func (r *runner) inject(ctx context.Context, k Kind) error {
	t := time.Now()
	switch k {
	case CoordinatorKill:
		i := r.rng.IntN(len(r.coords))
		p := r.coords[i]
		p.kill()
		if err := p.start(ctx); err != nil {
			return err
		}
		r.logf("%s: SIGKILL %s, restarted in %v", k, p.name, time.Since(t).Round(time.Millisecond))
	case ShopKill, ParticipantDown:
		r.shop.kill()
		down := time.Duration(0)
		if k == ParticipantDown {
			down = 2*time.Second + time.Duration(r.rng.Int64N(int64(2*time.Second)))
			select {
			case <-time.After(down):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := r.shop.start(ctx); err != nil {
			return err
		}
		r.logf("%s: SIGKILL shop, down %v, back in %v (new orders: %s)", k, down.Round(time.Millisecond),
			time.Since(t).Round(time.Millisecond), r.shopPattern(r.shop.starts-1))
	case BrokerRestart:
		if err := r.nats.Close(); err != nil {
			r.logf("closing NATS: %v", err)
		}
		down := time.Second + time.Duration(r.rng.Int64N(int64(time.Second)))
		select {
		case <-time.After(down):
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := r.openNATS(ctx); err != nil {
			return err
		}
		r.logf("%s: NATS stopped, reopened on the same files and port after %v", k, down.Round(time.Millisecond))
		r.checkReconnect(ctx)
	default:
		d := r.topo.domainOf(k)
		if d == nil {
			return fmt.Errorf("chaos: no process fault %q", k)
		}
		if err := d.inject(ctx, r.rng, k, r.logf); errors.Is(err, errNotNow) {
			r.logf("%s skipped: %v", k, err)
			return nil
		} else if err != nil {
			return fmt.Errorf("chaos: %s: %w", k, err)
		}
		if k == BrokerNodeKill {
			r.checkReconnect(ctx)
		}
	}
	r.injected[k]++
	return nil
}

// A planned kind whose slot was skipped (errNotNow: say pg_auto_failover
// was failing over on its own, its starved primary having missed health
// checks) is tried again every missingEvery, with the load on, for at most
// missingFor; one still missing then fails the run as never injected.
var (
	missingEvery = 2 * time.Second
	missingFor   = 3 * time.Minute
)

// injectMissing injects, once each, the kinds not injected yet.
func (r *runner) injectMissing(ctx context.Context, kinds []Kind) error {
	deadline := time.Now().Add(missingFor)
	for _, k := range kinds {
		for r.injected[k] == 0 && time.Now().Before(deadline) {
			select {
			case <-time.After(missingEvery):
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := r.check(ctx); err != nil {
				return err
			}
			if err := r.inject(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkReconnect waits until choreographed orders finish again after a
// broker restart, through the same shop process: its NATS client must have
// reconnected, its relays published again and its consumers resumed. A
// shop that does not recover within 20s is a violation.
func (r *runner) checkReconnect(ctx context.Context) {
	oc := &order.Client{URL: r.orderURL, HTTP: &http.Client{Timeout: 5 * time.Second}}
	count := func() (finished, pending int, err error) {
		all, err := oc.List(ctx, "")
		for _, o := range all {
			if o.Pattern != order.PatternChoreography {
				continue
			}
			if o.Status == order.Pending {
				pending++
			} else {
				finished++
			}
		}
		return finished, pending, err
	}
	// Deliveries handled while the server stopped may still finish an
	// order: count from a moment later. Nothing outside the shop tells
	// when they are done, so this one is a pause (cut short if the run
	// ends; count then reports the canceled context).
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
	}
	before, pending, err := count()
	if err != nil {
		r.logf("broker reconnection not checked: %v", err)
		return
	}
	if pending == 0 && r.shopPattern(r.shop.starts-1) != order.PatternChoreography {
		r.logf("broker reconnection not checked: no choreographed order in flight")
		return
	}
	t := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(20 * time.Second)
	defer limit.Stop()
poll:
	for {
		select {
		case <-ctx.Done():
			break poll
		case <-limit.C:
			break poll
		case <-tick.C:
		}
		if n, _, err := count(); err == nil && n > before {
			r.reconnects++
			r.logf("the shop's NATS client reconnected: choreographed orders finish again %v after the restart", time.Since(t).Round(time.Millisecond))
			return
		}
	}
	r.problems = append(r.problems, "after a broker restart no choreographed order finished within 20s: the shop's NATS client did not resume")
}

// check restarts a process that died on its own (and says so).
func (r *runner) check(ctx context.Context) error {
	for _, p := range append(slices.Clone(r.coords), r.shop) {
		if p.exited() {
			r.logf("%s exited on its own; restarting it:\n%s", p.name, dbproc.TailFile(p.logPath, 10))
			if err := p.start(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	c := r.cfg
	res := &Result{Pattern: c.Pattern, Topology: r.topo.name, Store: "sqlite", Coordinators: c.Coordinators, Seed: c.Seed, Dir: c.Dir}
	if c.StoreDSN != "" {
		res.Store = "postgres"
	}
	if !r.usesCoordinator() {
		res.Coordinators = 0
	}
	for _, k := range r.plannedKinds() {
		res.Planned = append(res.Planned, string(k))
	}

	for _, p := range append(slices.Clone(r.coords), r.shop) {
		p.retry = r.topo.restartRetry()
	}

	// Load and faults for the duration, and until every planned kind was
	// injected once: the plan's first slots hold each kind once, and a
	// fault that takes long (a failover, a restart while the database
	// fails over) can push them past the end; the load then goes on until
	// they are in. A kind whose slot was skipped is tried again
	// (injectMissing).
	l := newDriver(r.orderURL, c.Seed)
	gen, stopGen := context.WithCancel(ctx)
	defer stopGen()
	loadStart := time.Now()
	loadEnd := loadStart.Add(c.Duration)
	if c.Concurrency > 0 {
		l.startConcurrent(gen, ctx, c.Concurrency)
		r.logf("load: %d clients, each waiting for its order's outcome", c.Concurrency)
	} else {
		l.startRate(gen, ctx, c.Rate)
		r.logf("load: %.0f orders/s", c.Rate)
	}
	kinds := r.processKinds()
	plan := ScheduleKinds(r.rng, kinds, c.Duration)
	for i, s := range plan {
		at := loadStart.Add(s.At)
		if i >= len(kinds) && !at.Before(loadEnd) {
			break
		}
		if at.After(loadEnd) {
			at = loadEnd
		}
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if i >= len(kinds) && !time.Now().Before(loadEnd) {
			break
		}
		if err := r.check(ctx); err != nil {
			return nil, err
		}
		if err := r.inject(ctx, s.Kind); err != nil {
			return nil, err
		}
	}
	if err := r.injectMissing(ctx, kinds); err != nil {
		return nil, err
	}
	select {
	case <-time.After(time.Until(loadEnd)):
	case <-ctx.Done():
	}
	stopGen()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.DurationS = load.Round2(time.Since(r.t0).Seconds())

	// Stop the faults: the shop restarts gracefully without injection.
	r.logf("load stopped; stopping the faults (graceful shop restart without injection)")
	if err := r.topo.settle(ctx); err != nil {
		return nil, err
	}
	res.PGFailoverS = r.topo.failovers()
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	r.shop.stop(15 * time.Second)
	r.shopFaults = 0
	if err := r.shop.start(ctx); err != nil {
		return nil, err
	}

	// Recovery: every request answered, no order pending, no transaction
	// unfinished.
	tq := time.Now()
	deadline := tq.Add(c.QuiesceTimeout)
	l.finish(deadline)
	var st dtx.Store
	err := r.retryReads(ctx, deadline, func() (err error) {
		st, err = r.openStore(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if st != nil {
		defer st.Close()
	}
	var stuck []string
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		stuck = load.Unfinished(ctx, &order.Client{URL: r.orderURL, HTTP: &http.Client{Timeout: 10 * time.Second}}, st)
		if len(stuck) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done(): // one more look, then stop
		}
	}
	for _, k := range l.Unanswered() {
		stuck = append(stuck, "order request "+k+" never answered")
	}
	res.RecoveryS = load.Round2(time.Since(tq).Seconds())
	r.logf("recovery: %d unfinished after %.1fs", len(stuck), res.RecoveryS)

	// Faults injected.
	res.Faults = map[string]int64{}
	for k, n := range r.injected {
		res.Faults[string(k)] = n
	}
	res.Faults[string(DuplicateRequest)] = l.Duplicates.Load()
	fs, err := r.shopFaultStats()
	if err != nil {
		return nil, err
	}
	res.Faults[string(Fail)], res.Faults[string(Delay)], res.Faults[string(Lose)] = fs.Fail, fs.Delay, fs.Lose
	for _, k := range res.Planned {
		if res.Faults[k] == 0 {
			res.Missing = append(res.Missing, k)
		}
	}
	res.Requests, res.ClientRetries = l.Requests.Load(), l.Retries.Load()
	res.BrokerResumed = r.reconnects

	// Verify.
	violations, err := r.verify(ctx, res, st, l)
	if err != nil {
		return nil, err
	}
	sort.Strings(stuck)
	sort.Strings(violations)
	res.Stuck, res.StuckList = len(stuck), load.First(stuck, 20)
	res.Violations, res.ViolationList = len(violations), load.First(violations, 20)
	res.OK = res.Stuck == 0 && res.Violations == 0 && len(res.Missing) == 0
	return res, nil
}

// retryReads runs fn, the checker's own connection or reads, until it
// succeeds or deadline passes: on the ha topology a database node may be
// rejoining or slow to answer a new connection on a starved machine, which
// says nothing about what the run is verifying.
func (r *runner) retryReads(ctx context.Context, deadline time.Time, fn func() error) error {
	for {
		err := fn()
		if err == nil || r.topo.db == nil || time.Now().After(deadline) {
			return err
		}
		r.logf("checker: %v; trying again", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return err
		}
	}
}

// openStore opens the coordinators' store (nil for choreography).
func (r *runner) openStore(ctx context.Context) (dtx.Store, error) {
	if !r.usesCoordinator() {
		return nil, nil
	}
	if r.cfg.StoreDSN != "" {
		return postgres.Open(ctx, r.cfg.StoreDSN, sqlstore.Config{})
	}
	return sqlite.Open(ctx, filepath.Join(r.cfg.Dir, "coordinator.db"), sqlstore.Config{})
}

// shopFaultStats sums the fault counts of every shop incarnation.
func (r *runner) shopFaultStats() (faults.Stats, error) {
	var sum faults.Stats
	files, err := filepath.Glob(filepath.Join(r.statsDir, "shop-*.json"))
	if err != nil {
		return sum, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return sum, err
		}
		var s struct{ Order, Inventory, Payment faults.Stats }
		if err := json.Unmarshal(b, &s); err != nil {
			return sum, fmt.Errorf("%s: %w", f, err)
		}
		for _, x := range []faults.Stats{s.Order, s.Inventory, s.Payment} {
			sum.Calls += x.Calls
			sum.Fail += x.Fail
			sum.Delay += x.Delay
			sum.Lose += x.Lose
		}
	}
	return sum, nil
}

// verify checks the invariants over the three databases, each order
// against its transaction, one order per idempotency key, dead letters,
// and the coordinators' histories.
func (r *runner) verify(ctx context.Context, res *Result, st dtx.Store, l *driver) ([]string, error) {
	var dbs [3]*sql.DB
	for i, name := range []string{"order", "inventory", "payment"} {
		var db *sql.DB
		var err error
		if dsn := r.cfg.ServiceDSNs[i]; dsn != "" {
			db, err = sql.Open("pgx", dsn)
		} else {
			db, err = sqlitedb.Open(ctx, filepath.Join(r.shopDir, name+".db"), 1)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s database: %w", name, err)
		}
		defer db.Close()
		dbs[i] = db
	}
	var rep *verify.Report
	err := r.retryReads(ctx, time.Now().Add(time.Minute), func() (err error) {
		rep, err = verify.Check(ctx, dbs[0], dbs[1], dbs[2])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	res.Orders, res.Completed, res.Cancelled = rep.Orders, rep.Completed, rep.Cancelled
	violations := append(slices.Clone(rep.Violations), r.problems...)
	violations = append(violations, l.Problems()...)
	keys := l.Keys()
	if rep.Orders != keys {
		violations = append(violations, fmt.Sprintf("%d idempotency keys were sent but the order service holds %d orders", keys, rep.Orders))
	}

	// Dead letters of the choreographed services.
	if r.usesBroker() {
		for i, svc := range []string{"order", "inventory", "payment"} {
			var dl []struct {
				ID, Topic, Error string
				Attempts         int
			}
			err := r.retryReads(ctx, time.Now().Add(time.Minute), func() error {
				return getJSON(ctx, "http://"+r.addrs[i]+"/events/dead-letters", &dl)
			})
			if err != nil {
				return nil, fmt.Errorf("%s dead letters: %w", svc, err)
			}
			for _, d := range dl {
				violations = append(violations, fmt.Sprintf("%s: event %s (%s) dead-lettered after %d attempts: %s", svc, d.ID, d.Topic, d.Attempts, d.Error))
			}
		}
	}

	// Every order against its transaction; the histories for overlapping
	// coordinators.
	oc := &order.Client{URL: r.orderURL, HTTP: &http.Client{Timeout: 30 * time.Second}}
	var all []*order.Order
	err = r.retryReads(ctx, time.Now().Add(time.Minute), func() (err error) {
		all, err = oc.List(ctx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	res.ByPattern = map[string]map[string]int{}
	for _, o := range all {
		if res.ByPattern[o.Pattern] == nil {
			res.ByPattern[o.Pattern] = map[string]int{}
		}
		res.ByPattern[o.Pattern][strings.ToLower(string(o.Status))]++
	}
	if st == nil {
		return violations, nil
	}
	var mismatches []string
	err = r.retryReads(ctx, time.Now().Add(time.Minute), func() (err error) {
		res.HA = &HAReport{}
		owners := map[string]bool{}
		mismatches, err = load.CrossCheck(ctx, all, st, func(o *order.Order) error {
			evs, err := st.Events(ctx, o.GID)
			if err != nil {
				return err
			}
			res.HA.Add(o.GID, evs, owners)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	violations = append(violations, mismatches...)
	if res.HA != nil {
		violations = append(violations, res.HA.Overlaps...)
	}
	return violations, nil
}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// shutdown stops every process this run started and the broker.
func (r *runner) shutdown() {
	if r.shop != nil {
		r.shop.stop(10 * time.Second)
	}
	for _, p := range r.coords {
		p.stop(10 * time.Second)
	}
	if r.proxy != nil {
		r.proxy.Close()
	}
	if r.nats != nil {
		r.nats.Close()
	}
}
