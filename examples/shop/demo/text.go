package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	shopevents "github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/load"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/flow"
)

// WriteText writes the summary for people: counts, faults, the invariants'
// verdict, and one cancelled order as it was recorded.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\n%d orders in %.1fs (%.1f orders/s)\n", r.Orders, r.ElapsedS, r.SagasPerS)
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
	if r.requested != 0 && r.Orders != r.requested {
		fmt.Fprintf(w, "WARNING: the order service holds a different number of orders than were requested\n")
	}
	if r.OK() {
		fmt.Fprintf(w, "invariants: OK — stock and money conserved, every order completed exactly once or cancelled with no effect\n")
	} else {
		fmt.Fprintf(w, "invariants: %d VIOLATIONS, %d stuck\n", r.Violations, r.Stuck)
		for _, v := range r.ViolationList {
			fmt.Fprintf(w, "  - %s\n", v)
		}
		for _, s := range r.StuckList {
			fmt.Fprintf(w, "  - stuck: %s\n", s)
		}
	}
	for _, l := range r.example {
		fmt.Fprintln(w, l)
	}
}

// WriteHoldText writes what a demo kept serving after its run offers.
func (r *Result) WriteHoldText(w io.Writer) {
	fmt.Fprintf(w, "\nDashboard: %s/ui/  (every transaction of the run, as a sequence diagram; live)\n", r.URLs["coordinator"])
	fmt.Fprintf(w, "More orders show up live: curl -s '%s/orders?wait=true' -d '{\"user_id\":2,\"items\":[{\"product_id\":1,\"quantity\":1}]}'\n", r.URLs["order"])
	if u := r.URLs["cart"]; u != "" {
		fmt.Fprintf(w, "Carts: curl -s %s/carts/%s/events; curl -s %s/sales; dtx cart show --url %s %s\n", u, cartID(r.Seed, 0), u, u, cartID(r.Seed, 0))
	}
	fmt.Fprintf(w, "Serving until Ctrl-C.\n")
}

// compensated is the history of one cancelled order's transaction, so a
// newcomer sees what a compensation looked like.
func compensated(ctx context.Context, orders load.Orders, c *client.Client) []string {
	cancelled, err := orders.List(ctx, order.Cancelled)
	if err != nil || len(cancelled) == 0 {
		return nil
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
		return nil
	}
	out := []string{
		fmt.Sprintf("\nOne cancelled order, as the coordinator recorded it (%s, order %d):", d.GID, pick.ID),
		fmt.Sprintf("  reason: %s", d.Reason),
	}
	for _, e := range d.Events {
		at := e.At.Sub(d.CreatedAt).Milliseconds()
		if e.Branch < 0 {
			out = append(out, fmt.Sprintf("  %+6dms  %-22s -> %s", at, d.Pattern.Title(), e.Outcome))
			continue
		}
		name := fmt.Sprint(e.Branch + 1)
		if e.Branch < len(d.Branches) {
			name = d.Branches[e.Branch].Name
		}
		detail := e.Detail
		if len(detail) > 70 {
			detail = detail[:70] + "…"
		}
		out = append(out, fmt.Sprintf("  %+6dms  %-22s %-10s %-8s %5.1fms  %s", at, name, e.Op, e.Outcome, float64(e.Duration.Microseconds())/1000, detail))
	}
	return append(out, fmt.Sprintf("  (the coordinator serves this as GET /v1/transactions/%s; --dir keeps the databases)", d.GID))
}

// flowExample is one cancelled choreographed order as reconstructed from
// its events.
func (d *Demo) flowExample(ctx context.Context) []string {
	cancelled, err := d.sh.Orders.List(ctx, order.Cancelled)
	if err != nil || len(cancelled) == 0 {
		return nil
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
	// The recorder is one more consumer: give it up to 5s to catch up
	// with the order's last event.
	var evs []flow.Event
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(5 * time.Second)
	defer limit.Stop()
poll:
	for {
		evs, err = d.flows.Timeline(ctx, gid)
		if err == nil && len(evs) > 0 && evs[len(evs)-1].Type == shopevents.OrderCancelled {
			break
		}
		select {
		case <-tick.C:
		case <-limit.C:
			break poll
		case <-ctx.Done():
			break poll
		}
	}
	if len(evs) == 0 {
		return nil
	}
	out := []string{
		fmt.Sprintf("\nOne cancelled order, reconstructed from its events (%s, order %d):", gid, pick.ID),
		fmt.Sprintf("  reason: %s", pick.Reason),
	}
	t0 := evs[0].PublishedAt
	for _, e := range evs {
		out = append(out, fmt.Sprintf("  %+6dms  %s%-10s -> %s", e.PublishedAt.Sub(t0).Milliseconds(), strings.Repeat("  ", e.Depth), e.Source, e.Type))
	}
	return append(out, fmt.Sprintf("  (served as GET %s/v1/flows/%s)", d.apiURL, gid))
}

// progress draws a progress bar on a terminal, or a line every few seconds
// otherwise.
type progress struct {
	w      *os.File
	total  int
	tty    bool
	quiet  bool
	orders load.Orders
	mu     sync.Mutex
	last   time.Time
	drawn  bool
}

func newProgress(w *os.File, total int, ttyOnly bool, orders load.Orders) *progress {
	if w == nil {
		return &progress{quiet: true}
	}
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return &progress{w: w, total: total, tty: tty, quiet: ttyOnly && !tty, orders: orders}
}

func (p *progress) update(placed int) {
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
		if os, err := p.orders.List(context.Background(), st); err == nil {
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
