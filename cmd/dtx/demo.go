package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/examples/shop"
	shopevents "github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// demoResult is the JSON summary; its fields are a contract for scripts.
type demoResult struct {
	Pattern        string            `json:"pattern"`
	Orders         int               `json:"orders"`
	Completed      int               `json:"completed"`
	Cancelled      int               `json:"cancelled"`
	Stuck          int               `json:"stuck"`
	Violations     int               `json:"violations"`
	ElapsedS       float64           `json:"elapsed_s"`
	SagasPerS      float64           `json:"sagas_per_s"`
	Seed           uint64            `json:"seed"`
	FaultRate      float64           `json:"fault_rate"`
	BranchCalls    int64             `json:"branch_calls"`
	FaultsInjected map[string]int64  `json:"faults_injected"`
	DuplicatesSent int               `json:"duplicate_requests"`
	CancelReasons  map[string]int    `json:"cancel_reasons,omitempty"`
	ViolationList  []string          `json:"violation_details,omitempty"`
	StuckList      []string          `json:"stuck_details,omitempty"`
	Dir            string            `json:"dir,omitempty"`
	URLs           map[string]string `json:"urls"`
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx demo", flag.ContinueOnError)
	pattern := fs.String("pattern", "saga", "transaction pattern: saga, tcc, xa (runs the services on a throwaway PostgreSQL), choreography (events through an embedded NATS JetStream) or saga-async (the saga's branch calls as commands and replies through an embedded NATS JetStream)")
	orders := fs.Int("orders", 200, "orders to place")
	concurrency := fs.Int("concurrency", 16, "orders placed at once")
	faultRate := fs.Float64("faults", 0.2, "probability that a branch call is faulted (fail before commit, delay, or commit-then-lose-the-response)")
	seed := fs.Uint64("seed", 1, "seed for orders and faults")
	dir := fs.String("dir", "", "directory for the databases (default: a temporary directory, removed afterwards)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON line (last line of output)")
	quiesce := fs.Duration("quiesce-timeout", 2*time.Minute, "how long to wait for every saga to finish after the last order")
	logLevel := fs.String("log-level", "error", "log level of the services and coordinator")
	hold := fs.Bool("hold", false, "after the summary, keep the coordinator, its dashboard and the shop running until Ctrl-C")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case !slices.Contains(order.Patterns, *pattern):
		return usagef("pattern %q is not available (available: %s)", *pattern, strings.Join(order.Patterns, ", "))
	case *orders < 1 || *orders > 1_000_000:
		return usagef("orders must be between 1 and 1000000")
	case *concurrency < 1 || *concurrency > 1024:
		return usagef("concurrency must be between 1 and 1024")
	case *faultRate < 0 || *faultRate > 1:
		return usagef("faults must be a rate between 0 and 1")
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "dtx-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	out := io.Writer(os.Stdout)
	if *asJSON {
		out = os.Stderr // keep stdout for the JSON line
	}

	// The coordinator, on its own SQLite file, with its HTTP API.
	st, err := sqlite.Open(ctx, filepath.Join(work, "coordinator.db"), sqlstore.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	mx := metrics.New()
	// saga-async: branch calls go as commands through an embedded NATS.
	var transport dtx.Transport = httptransport.New(nil)
	var asyncBroker broker.Broker
	var owner string
	if *pattern == order.PatternSagaAsync {
		nb, tr, o, err := startSagaAsync(ctx, work, out)
		if err != nil {
			return err
		}
		defer nb.Close()
		defer tr.Close()
		transport, asyncBroker, owner = tr, nb, o
	}
	coord, err := coordinator.New(st, transport, coordinator.Config{
		Owner: owner, Logger: log, RetryBase: 50 * time.Millisecond, RetryMax: time.Second, LeaseTTL: 5 * time.Second,
		Observer: mx,
	})
	if err != nil {
		return err
	}
	if err := coord.Start(ctx); err != nil {
		return err
	}
	defer coord.Close(context.Background())
	// The API: the coordinator's (with /metrics), plus the reconstructed
	// flows of choreographed orders (GET /v1/flows/{gid}).
	mx.Watch(coord)
	coordAPI := server.New(coord, server.WithMetrics(mx.Handler()))
	flowDB, err := sqlitedb.Open(ctx, filepath.Join(work, "flows.db"), 4)
	if err != nil {
		return err
	}
	defer flowDB.Close()
	flows := flow.NewStore(flowDB)
	if err := flows.Migrate(ctx); err != nil {
		return err
	}
	apiURL, stopAPI, err := loopback.Serve(flow.Mount(coordAPI, flows))
	if err != nil {
		return err
	}
	defer stopAPI()
	defer coordAPI.CloseStreams() // first: open dashboards must not hold up the shutdown

	// XA needs databases with two-phase commit: the services run on a
	// throwaway PostgreSQL server started from the installed binaries.
	var orderDSN, inventoryDSN, paymentDSN string
	if *pattern == order.PatternXA {
		dsns, label, cleanup, err := startTempPostgres(ctx, "orders", "inventory", "payment")
		if err != nil {
			return fmt.Errorf("the xa pattern needs PostgreSQL for the services' databases: %w", err)
		}
		defer cleanup()
		orderDSN, inventoryDSN, paymentDSN = dsns[0], dsns[1], dsns[2]
		fmt.Fprintf(out, "  services' databases on %s\n", label)
	}

	// Choreography: the services' events go through NATS JetStream,
	// embedded in this process with its files beside the databases.
	events := asyncBroker
	if *pattern == order.PatternChoreography {
		nb, err := natsbroker.OpenEmbedded(ctx, filepath.Join(work, "nats"), natsbroker.Config{})
		if err != nil {
			return fmt.Errorf("embedded NATS: %w", err)
		}
		defer nb.Close()
		events = nb
		subs, err := flow.Record(ctx, nb, flows, shopevents.Topics...)
		if err != nil {
			return err
		}
		defer func() {
			for _, s := range subs {
				s.Close()
			}
		}()
		fmt.Fprintf(out, "  events through an embedded NATS JetStream (files in %s)\n", filepath.Join(work, "nats"))
	}

	// The shop: three services, three databases, faults in every saga endpoint.
	branchTimeout := 500 * time.Millisecond
	fc := func(salt uint64) faults.Config {
		return faults.Config{Rate: *faultRate, Kinds: faults.AllKinds, Delay: 800 * time.Millisecond, Seed: int64(*seed*7919 + salt)}
	}
	sh, err := shop.Start(ctx, shop.Config{
		Dir: work, CoordinatorURL: apiURL, Pattern: *pattern, Broker: events,
		OrderDSN: orderDSN, InventoryDSN: inventoryDSN, PaymentDSN: paymentDSN,
		ResolveInterval: 2 * time.Second,
		OrderFaults:     fc(1), InventoryFaults: fc(2), PaymentFaults: fc(3),
		BranchTimeout: branchTimeout, SagaTimeout: 60 * time.Second,
		ResubmitInterval: time.Second, ResubmitAfter: 3 * time.Second, WaitTimeout: 30 * time.Second,
		Logger: log,
	})
	if err != nil {
		return err
	}
	defer sh.Close(context.Background())
	urls := map[string]string{"coordinator": apiURL, "order": sh.OrderURL(), "inventory": sh.InventoryURL(), "payment": sh.PaymentURL()}
	fmt.Fprintf(out, "dtx demo: %s pattern, %d orders, %d at a time, faults %.0f%% of branch calls, seed %d\n", *pattern, *orders, *concurrency, *faultRate*100, *seed)
	fmt.Fprintf(out, "  coordinator API %s  (try: curl %s/v1/transactions?limit=5)\n", apiURL, apiURL)
	fmt.Fprintf(out, "  dashboard %s/ui/  (live; --hold keeps it open after the run)\n", apiURL)
	fmt.Fprintf(out, "  order %s  inventory %s  payment %s\n  databases in %s\n", sh.OrderURL(), sh.InventoryURL(), sh.PaymentURL(), work)

	// Place the orders; every 10th is also sent a second time with the same
	// idempotency key, at the same moment, and must yield the same order.
	start := time.Now()
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	reqs := make([]demoOrder, *orders)
	for i := range reqs {
		reqs[i] = randomOrder(rng, *seed, i)
	}
	var placed, failedPlace atomic.Int64
	var mu sync.Mutex
	var problems []string
	ids := make([]int64, *orders)
	dupes := 0
	for i := range reqs {
		if i%10 == 9 {
			dupes++
		}
	}
	progress := newProgress(os.Stderr, *orders, *asJSON)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := reqs[i]
				place := func() (*order.Order, error) {
					for attempt := 0; ; attempt++ {
						o, err := sh.PlaceOrder(ctx, r.user, r.items, r.key, true)
						// The order service itself is healthy in the demo; a
						// transport error is retried with the same key, which
						// is exactly what the idempotency key is for.
						if err == nil || attempt == 5 || ctx.Err() != nil {
							return o, err
						}
						var he *order.HTTPError
						if errors.As(err, &he) && he.Status < 500 {
							return o, err
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
				var o, dup *order.Order
				var err, dupErr error
				if i%10 == 9 {
					var dwg sync.WaitGroup
					dwg.Add(1)
					go func() { defer dwg.Done(); dup, dupErr = place() }()
					o, err = place()
					dwg.Wait()
				} else {
					o, err = place()
				}
				mu.Lock()
				switch {
				case err != nil:
					failedPlace.Add(1)
					problems = append(problems, fmt.Sprintf("order request %d failed: %v", i, err))
				case dupErr != nil:
					problems = append(problems, fmt.Sprintf("duplicate of order request %d failed: %v", i, dupErr))
				case dup != nil && dup.ID != o.ID:
					problems = append(problems, fmt.Sprintf("duplicate request %q created a second order (%d and %d)", r.key, o.ID, dup.ID))
				}
				if o != nil {
					ids[i] = o.ID
				}
				mu.Unlock()
				placed.Add(1)
				progress.update(sh, int(placed.Load()))
			}
		}()
	}
	for i := range reqs {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		progress.done()
		return errors.New("interrupted")
	}

	// Wait for every saga and every order to be final.
	stuck := waitQuiet(ctx, sh, st, *quiesce)
	progress.update(sh, int(placed.Load()))
	progress.done()
	elapsed := time.Since(start)

	rep, err := sh.Verify(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	violations := append(problems, rep.Violations...)
	if *pattern != order.PatternChoreography {
		violations = append(violations, crossCheck(ctx, sh, client.New(apiURL, nil))...)
	}
	reasons := cancelReasons(ctx, sh)

	fst := sh.FaultStats()
	res := demoResult{
		Pattern: *pattern, Orders: rep.Orders, Completed: rep.Completed, Cancelled: rep.Cancelled,
		Stuck: len(stuck), Violations: len(violations), ElapsedS: round2(elapsed.Seconds()),
		SagasPerS: round2(float64(rep.Orders) / elapsed.Seconds()), Seed: *seed, FaultRate: *faultRate,
		BranchCalls: fst.Order.Calls + fst.Inventory.Calls + fst.Payment.Calls,
		FaultsInjected: map[string]int64{
			"fail":  fst.Order.Fail + fst.Inventory.Fail + fst.Payment.Fail,
			"delay": fst.Order.Delay + fst.Inventory.Delay + fst.Payment.Delay,
			"lose":  fst.Order.Lose + fst.Inventory.Lose + fst.Payment.Lose,
		},
		DuplicatesSent: dupes, CancelReasons: reasons, ViolationList: first(violations, 20), StuckList: first(stuck, 20), URLs: urls,
	}
	if *dir != "" {
		res.Dir = work
	}
	printDemoSummary(out, res, rep.Orders != *orders)
	if *pattern != order.PatternChoreography {
		showCompensated(ctx, out, sh, client.New(apiURL, nil))
	} else {
		showFlow(ctx, out, sh, flows, apiURL)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if *hold {
		holdOpen(ctx, out, apiURL, sh)
	}
	if res.Stuck > 0 || res.Violations > 0 {
		return errExit
	}
	return nil
}

type demoOrder struct {
	user  int64
	items []order.Item
	key   string
}

// randomOrder draws a customer and 1–3 lines. Most orders can succeed; some
// hit the declined customer (2), the nearly broke one (3), the scarce
// product (4) or the sold-out one (5), so the run shows compensations for
// business reasons as well as for injected faults.
func randomOrder(rng *rand.Rand, seed uint64, i int) demoOrder {
	users := []int64{1, 1, 1, 1, 4, 4, 4, 3, 3, 2}
	weights := []struct {
		id int64
		w  int
	}{{1, 50}, {2, 38}, {3, 6}, {4, 3}, {5, 3}}
	n := 1 + rng.IntN(3)
	seen := map[int64]bool{}
	var items []order.Item
	for range n {
		x := rng.IntN(100)
		var id int64
		for _, w := range weights {
			if x < w.w {
				id = w.id
				break
			}
			x -= w.w
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		items = append(items, order.Item{ProductID: id, Quantity: int64(1 + rng.IntN(3))})
	}
	return demoOrder{user: users[rng.IntN(len(users))], items: items, key: fmt.Sprintf("demo-%d-%d", seed, i)}
}

// waitQuiet waits until no order is pending and no saga is unfinished, and
// returns what is still unfinished when the timeout passes.
func waitQuiet(ctx context.Context, sh *shop.Shop, st dtx.Store, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		stuck := unfinished(ctx, sh, st)
		if len(stuck) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return stuck
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func unfinished(ctx context.Context, sh *shop.Shop, st dtx.Store) []string {
	ctx = context.WithoutCancel(ctx)
	var out []string
	pending, err := sh.Orders.List(ctx, order.Pending)
	if err != nil {
		return []string{"cannot list orders: " + err.Error()}
	}
	seen := map[string]bool{}
	for _, o := range pending {
		gid := order.GID(o.ID)
		seen[gid] = true
		out = append(out, fmt.Sprintf("order %d PENDING (saga %s)", o.ID, gid))
	}
	for _, s := range []dtx.Status{dtx.StatusRunning, dtx.StatusCompensating} {
		txs, err := st.List(ctx, dtx.ListFilter{Status: s, Limit: 1000})
		if err != nil {
			return append(out, "cannot list sagas: "+err.Error())
		}
		for _, tx := range txs {
			if !seen[tx.GID] {
				out = append(out, fmt.Sprintf("saga %s %s", tx.GID, tx.Status))
			}
		}
	}
	return out
}

// crossCheck checks that each order's status agrees with its saga's
// outcome: COMPLETED ⇔ succeeded, CANCELLED ⇔ failed.
func crossCheck(ctx context.Context, sh *shop.Shop, c *client.Client) []string {
	ctx = context.WithoutCancel(ctx)
	var out []string
	for _, st := range []order.Status{order.Completed, order.Cancelled} {
		os, err := sh.Orders.List(ctx, st)
		if err != nil {
			return []string{"cannot list orders: " + err.Error()}
		}
		want := dtx.StatusSucceeded
		if st == order.Cancelled {
			want = dtx.StatusFailed
		}
		for _, o := range os {
			d, err := c.Get(ctx, order.GID(o.ID))
			if err != nil {
				out = append(out, fmt.Sprintf("order %d %s: saga %s: %v", o.ID, st, order.GID(o.ID), err))
				continue
			}
			if d.Status != want {
				out = append(out, fmt.Sprintf("order %d is %s but its saga %s is %s", o.ID, st, d.GID, d.Status))
			}
		}
	}
	return out
}

// cancelReasons counts why orders were cancelled (from the coordinator's
// failure reasons, shortened to their business cause).
func cancelReasons(ctx context.Context, sh *shop.Shop) map[string]int {
	os, err := sh.Orders.List(context.WithoutCancel(ctx), order.Cancelled)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, o := range os {
		r := strings.ToLower(o.Reason)
		switch {
		case strings.Contains(r, "balance"), strings.Contains(r, "funds"):
			out["insufficient balance"]++
		case strings.Contains(r, "declined"):
			out["payment declined"]++
		case strings.Contains(r, "stock"):
			out["insufficient stock"]++
		case strings.Contains(r, "timed out"):
			out["saga timeout"]++
		default:
			out["other"]++
		}
	}
	return out
}

func printDemoSummary(w io.Writer, r demoResult, lost bool) {
	fmt.Fprintf(w, "\n%d orders in %.1fs (%.1f sagas/s)\n", r.Orders, r.ElapsedS, r.SagasPerS)
	fmt.Fprintf(w, "  completed  %6d\n  cancelled  %6d", r.Completed, r.Cancelled)
	if len(r.CancelReasons) > 0 {
		var parts []string
		for k, v := range r.CancelReasons {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "   (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "\n  stuck      %6d\n", r.Stuck)
	fmt.Fprintf(w, "faults injected: %d failed before commit, %d delayed, %d committed then lost the response (of %d branch calls)\n",
		r.FaultsInjected["fail"], r.FaultsInjected["delay"], r.FaultsInjected["lose"], r.BranchCalls)
	fmt.Fprintf(w, "duplicate requests (same idempotency key, sent concurrently): %d\n", r.DuplicatesSent)
	if lost {
		fmt.Fprintf(w, "WARNING: the order service holds a different number of orders than were requested\n")
	}
	if r.Violations == 0 && r.Stuck == 0 {
		fmt.Fprintf(w, "invariants: OK — stock and money conserved, every order completed exactly once or cancelled with no effect\n")
		return
	}
	fmt.Fprintf(w, "invariants: %d VIOLATIONS, %d stuck\n", r.Violations, r.Stuck)
	for _, v := range r.ViolationList {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	for _, s := range r.StuckList {
		fmt.Fprintf(w, "  - stuck: %s\n", s)
	}
}

func first(ss []string, n int) []string {
	if len(ss) > n {
		return append(ss[:n:n], fmt.Sprintf("… and %d more", len(ss)-n))
	}
	return ss
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// progress draws a progress bar on a terminal, or a line every few seconds
// otherwise.
type progress struct {
	w      io.Writer
	total  int
	tty    bool
	quiet  bool
	mu     sync.Mutex
	last   time.Time
	drawn  bool
	shop   *shop.Shop
	counts [3]int
}

func newProgress(w *os.File, total int, quiet bool) *progress {
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return &progress{w: w, total: total, tty: tty, quiet: quiet && !tty}
}

func (p *progress) update(sh *shop.Shop, placed int) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	every := 100 * time.Millisecond
	if !p.tty {
		every = 2 * time.Second
	}
	if time.Since(p.last) < every && placed < p.total {
		return
	}
	p.last = time.Now()
	counts := map[order.Status]int{}
	for _, st := range []order.Status{order.Pending, order.Completed, order.Cancelled} {
		if os, err := sh.Orders.List(context.Background(), st); err == nil {
			counts[st] = len(os)
		}
	}
	const width = 30
	fill := width * placed / p.total
	bar := strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
	line := fmt.Sprintf("%s %d/%d placed  completed %d  cancelled %d  in flight %d", bar, placed, p.total, counts[order.Completed], counts[order.Cancelled], counts[order.Pending])
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// showCompensated prints the history of one cancelled order's transaction,
// so a newcomer sees what a compensation looked like.
func showCompensated(ctx context.Context, w io.Writer, sh *shop.Shop, c *client.Client) {
	ctx = context.WithoutCancel(ctx)
	cancelled, err := sh.Orders.List(ctx, order.Cancelled)
	if err != nil || len(cancelled) == 0 {
		return
	}
	// Prefer one that also went through retries.
	pick := cancelled[0]
	var d *dtx.TxDetail
	for i, o := range cancelled {
		if i == 50 {
			break
		}
		dd, err := c.Get(ctx, order.GID(o.ID))
		if err != nil {
			continue
		}
		if d == nil || len(dd.Events) > len(d.Events) {
			pick, d = o, dd
		}
	}
	if d == nil {
		return
	}
	fmt.Fprintf(w, "\nOne cancelled order, as the coordinator recorded it (%s, order %d):\n", d.GID, pick.ID)
	fmt.Fprintf(w, "  reason: %s\n", d.Reason)
	for _, e := range d.Events {
		at := e.At.Sub(d.CreatedAt).Milliseconds()
		if e.Branch < 0 {
			fmt.Fprintf(w, "  %+6dms  saga                   -> %s\n", at, e.Outcome)
			continue
		}
		name := fmt.Sprint(e.Branch)
		if e.Branch < len(d.Branches) {
			name = d.Branches[e.Branch].Name
		}
		detail := e.Detail
		if len(detail) > 70 {
			detail = detail[:70] + "…"
		}
		fmt.Fprintf(w, "  %+6dms  %-22s %-10s %-8s %5.1fms  %s\n", at, name, e.Op, e.Outcome, float64(e.Duration.Microseconds())/1000, detail)
	}
	fmt.Fprintf(w, "  (the coordinator serves this as GET /v1/transactions/%s; --dir keeps the databases)\n", d.GID)
}

// showFlow prints one cancelled choreographed order as reconstructed from
// its events.
func showFlow(ctx context.Context, w io.Writer, sh *shop.Shop, flows *flow.Store, apiURL string) {
	ctx = context.WithoutCancel(ctx)
	cancelled, err := sh.Orders.List(ctx, order.Cancelled)
	if err != nil || len(cancelled) == 0 {
		return
	}
	// Prefer a payment refusal: its flow goes forward, then back.
	pick := cancelled[0]
	for _, o := range cancelled {
		if strings.Contains(strings.ToLower(o.Reason), "declined") || strings.Contains(strings.ToLower(o.Reason), "balance") {
			pick = o
			break
		}
	}
	gid := order.GID(pick.ID)
	var evs []flow.Event
	for range 50 { // the recorder is one more consumer: let it catch up
		evs, err = flows.Timeline(ctx, gid)
		if err == nil && len(evs) > 0 {
			if evs[len(evs)-1].Type == shopevents.OrderCancelled {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(evs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nOne cancelled order, reconstructed from its events (%s, order %d):\n", gid, pick.ID)
	fmt.Fprintf(w, "  reason: %s\n", pick.Reason)
	t0 := evs[0].PublishedAt
	for _, e := range evs {
		fmt.Fprintf(w, "  %+6dms  %s%-10s -> %s\n", e.PublishedAt.Sub(t0).Milliseconds(), strings.Repeat("  ", e.Depth), e.Source, e.Type)
	}
	fmt.Fprintf(w, "  (served as GET %s/v1/flows/%s)\n", apiURL, gid)
}

// holdOpen keeps everything serving until ctx is cancelled (Ctrl-C), so a
// newcomer can browse the run in the dashboard and place more orders.
func holdOpen(ctx context.Context, w io.Writer, apiURL string, sh *shop.Shop) {
	fmt.Fprintf(w, "\nDashboard: %s/ui/  (every transaction of the run, as a sequence diagram; live)\n", apiURL)
	fmt.Fprintf(w, "More orders show up live: curl -s '%s/orders?wait=true' -d '{\"user_id\":2,\"items\":[{\"product_id\":1,\"quantity\":1}]}'\n", sh.OrderURL())
	fmt.Fprintf(w, "Serving until Ctrl-C.\n")
	<-ctx.Done()
	fmt.Fprintf(w, "stopping\n")
}
