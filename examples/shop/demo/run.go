package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop/load"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// Result is the demo's summary; its JSON form is a contract for scripts.
type Result struct {
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

	requested int      // orders requested (Orders is what the service holds)
	example   []string // one cancelled order, as recorded, to show
}

// OK reports whether nothing was stuck and no invariant was violated.
func (r *Result) OK() bool { return r.Stuck == 0 && r.Violations == 0 }

// Run places the orders, waits until every transaction is finished,
// verifies the invariants and returns the summary. ctx cancelled while
// placing ends the run with an error.
func (d *Demo) Run(ctx context.Context) (*Result, error) {
	c := d.cfg
	start := time.Now()
	reqs := d.requests()
	p := &load.Placer{
		// The order service itself is healthy in the demo; a transport
		// error is retried with the same key, which is exactly what the
		// idempotency key is for.
		Client:   &order.Client{URL: d.sh.OrderURL(), HTTP: &http.Client{}},
		Attempts: 6, Backoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	prog := newProgress(c.Progress, c.Orders, c.ProgressTTYOnly, d.sh.Orders)
	var carts *cartRun
	if c.Pattern == PatternEventSourcing {
		carts = d.placeCarts(ctx, reqs, prog)
	} else {
		d.place(ctx, p, reqs, prog)
	}
	if ctx.Err() != nil {
		prog.done()
		return nil, errors.New("interrupted")
	}

	// Wait for every transaction and every order to be final.
	stuck := d.waitQuiet(ctx)
	if carts != nil {
		stuck = append(stuck, d.settleCarts(context.WithoutCancel(ctx), len(reqs))...)
	}
	prog.update(c.Orders)
	prog.done()
	elapsed := time.Since(start)
	ctx = context.WithoutCancel(ctx)
	rep, err := d.sh.Verify(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	violations := append(p.Problems(), rep.Violations...)
	if carts != nil {
		violations = append(violations, carts.problems...)
		violations = append(violations, d.verifyCarts(ctx, len(reqs))...)
	}
	if c.Pattern != order.PatternChoreography {
		all, err := d.sh.Orders.List(ctx, "")
		if err != nil {
			violations = append(violations, "cannot list orders: "+err.Error())
		}
		mismatches, _ := load.CrossCheck(ctx, all, d.st, nil)
		violations = append(violations, mismatches...)
	}
	fst := d.sh.FaultStats()
	res := &Result{
		Pattern: c.Pattern, Orders: rep.Orders, Completed: rep.Completed, Cancelled: rep.Cancelled,
		Stuck: len(stuck), Violations: len(violations), ElapsedS: load.Round2(elapsed.Seconds()),
		SagasPerS: load.Round2(float64(rep.Orders) / elapsed.Seconds()), Seed: c.Seed, FaultRate: c.FaultRate,
		BranchCalls: fst.Order.Calls + fst.Inventory.Calls + fst.Payment.Calls,
		FaultsInjected: map[string]int64{
			"fail":  fst.Order.Fail + fst.Inventory.Fail + fst.Payment.Fail,
			"delay": fst.Order.Delay + fst.Inventory.Delay + fst.Payment.Delay,
			"lose":  fst.Order.Lose + fst.Inventory.Lose + fst.Payment.Lose,
		},
		DuplicatesSent: dupes(reqs), CancelReasons: d.cancelReasons(ctx),
		ViolationList: load.First(violations, 20), StuckList: load.First(stuck, 20), URLs: d.urls,
		requested: c.Orders,
	}
	if c.Dir != "" {
		res.Dir = d.work
	}
	switch c.Pattern {
	case PatternEventSourcing:
		res.example = append(d.cartExample(ctx, len(reqs)), compensated(ctx, d.sh.Orders, client.ForURL(d.apiURL, nil))...)
	default:
		res.example = compensated(ctx, d.sh.Orders, client.ForURL(d.apiURL, nil))
	case order.PatternChoreography:
		res.example = d.flowExample(ctx)
	}
	return res, nil
}

// requests draws the orders (load.DemoMix); every 10th is also sent a
// second time with the same idempotency key, at the same moment, and must
// yield the same order.
func (d *Demo) requests() []load.Request {
	rng := rand.New(rand.NewPCG(d.cfg.Seed, 0x5eed))
	reqs := make([]load.Request, d.cfg.Orders)
	for i := range reqs {
		reqs[i] = load.Request{Key: fmt.Sprintf("demo-%d-%d", d.cfg.Seed, i), Req: load.DemoMix.Draw(rng), Dupe: i%10 == 9}
	}
	return reqs
}

func dupes(reqs []load.Request) int {
	n := 0
	for _, r := range reqs {
		if r.Dupe {
			n++
		}
	}
	return n
}

// place places reqs, Concurrency at a time, each waiting for its outcome.
func (d *Demo) place(ctx context.Context, p *load.Placer, reqs []load.Request, prog *progress) {
	var mu sync.Mutex
	placed := 0
	jobs := make(chan load.Request)
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Go(func() {
			for r := range jobs {
				p.Place(ctx, r, true)
				mu.Lock()
				placed++
				n := placed
				mu.Unlock()
				prog.update(n)
			}
		})
	}
	for _, r := range reqs {
		select {
		case jobs <- r:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
}

// waitQuiet waits until no order is pending and no transaction is
// unfinished, and returns what is still unfinished when the timeout
// passes.
func (d *Demo) waitQuiet(ctx context.Context) []string {
	deadline := time.Now().Add(d.cfg.QuiesceTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		stuck := load.Unfinished(context.WithoutCancel(ctx), d.sh.Orders, d.st)
		if len(stuck) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return stuck
		}
		select {
		case <-tick.C:
		case <-ctx.Done(): // one more look, then stop
		}
	}
}

// cancelReasons counts why orders were cancelled (from the coordinator's
// failure reasons, shortened to their business cause).
func (d *Demo) cancelReasons(ctx context.Context) map[string]int {
	os, err := d.sh.Orders.List(ctx, order.Cancelled)
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
