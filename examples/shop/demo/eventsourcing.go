package demo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtxhq/dtx/examples/shop/cart"
	"github.com/dtxhq/dtx/examples/shop/load"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// PatternEventSourcing is the demo of the event-sourced cart (package
// cart): each order is a cart created, filled (sometimes with a product
// added and removed again, as in the seeds' story), given shipping info
// and checked out; the checkout places the order through the order
// service, which fulfils it by saga. The read model of the carts' events
// is then checked against a fold of the events and against the orders.
const PatternEventSourcing = "eventsourcing"

// shopPattern is the order service's pattern for a demo pattern.
func shopPattern(p string) string {
	if p == PatternEventSourcing {
		return order.PatternSaga
	}
	return p
}

// startCarts runs the cart service on its own SQLite files in the work
// directory: events in cart-events.db, the read model in cart-queries.db.
func (d *Demo) startCarts(ctx context.Context) error {
	s, err := cart.Start(ctx, cart.ServerConfig{Dir: d.work, OrderURL: d.sh.OrderURL(), Logger: d.cfg.Logger, ProjectionPoll: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	d.carts = s
	d.onClose(func() { s.Close() })
	d.urls["cart"] = s.URL()
	fmt.Fprintf(d.cfg.Out, "  carts %s: event-sourced (events in cart-events.db), read model by projection in cart-queries.db\n", s.URL())
	fmt.Fprintf(d.cfg.Out, "    try: curl %s/carts/%s/events   curl %s/projections   dtx cart show --url %s %s\n",
		s.URL(), cartID(d.cfg.Seed, 0), s.URL(), s.URL(), cartID(d.cfg.Seed, 0))
	return nil
}

func cartID(seed uint64, i int) string { return fmt.Sprintf("demo-%d-%d", seed, i) }

// cartRun is what placing the carts left to check.
type cartRun struct {
	mu       sync.Mutex
	problems []string
}

func (r *cartRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// placeCarts runs one cart per request, Concurrency at a time: create,
// add the request's items, sometimes add a product and remove it again,
// add shipping info, check out (twice at once for the duplicates, which
// must yield the same order).
func (d *Demo) placeCarts(ctx context.Context, reqs []load.Request, prog *progress) *cartRun {
	run := &cartRun{}
	cl := &cart.Client{URL: d.carts.URL(), HTTP: &http.Client{}}
	var mu sync.Mutex
	placed := 0
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				d.fillAndCheckout(ctx, cl, run, i, reqs[i])
				mu.Lock()
				placed++
				n := placed
				mu.Unlock()
				prog.update(n)
			}
		})
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
	return run
}

func (d *Demo) fillAndCheckout(ctx context.Context, cl *cart.Client, run *cartRun, i int, r load.Request) {
	id := cartID(d.cfg.Seed, i)
	rng := rand.New(rand.NewPCG(d.cfg.Seed, uint64(i)))
	if _, err := cl.Create(ctx, id, r.Req.UserID); err != nil {
		run.problem("cart %s: create: %v", id, err)
		return
	}
	for _, it := range r.Req.Items {
		if _, err := cl.AddItem(ctx, id, it.ProductID, it.Quantity); err != nil {
			run.problem("cart %s: add product %d: %v", id, it.ProductID, err)
			return
		}
	}
	if rng.IntN(3) == 0 { // the seeds' "product 2 added, product 2 removed"
		extra := int64(1 + rng.IntN(4))
		if !slices.ContainsFunc(r.Req.Items, func(it order.Item) bool { return it.ProductID == extra }) {
			if _, err := cl.AddItem(ctx, id, extra, 1); err != nil {
				run.problem("cart %s: add product %d: %v", id, extra, err)
				return
			}
			if _, err := cl.RemoveItem(ctx, id, extra); err != nil {
				run.problem("cart %s: remove product %d: %v", id, extra, err)
				return
			}
		}
	}
	if _, err := cl.AddShipping(ctx, id, cart.Shipping{Name: fmt.Sprintf("user %d", r.Req.UserID), Address: fmt.Sprintf("%d Demo Street", i)}); err != nil {
		run.problem("cart %s: shipping info: %v", id, err)
		return
	}
	if !r.Dupe {
		checkout(ctx, cl, run, id)
		return
	}
	var a, b int64
	var wg sync.WaitGroup
	wg.Go(func() { a = checkout(ctx, cl, run, id) })
	wg.Go(func() { b = checkout(ctx, cl, run, id) })
	wg.Wait()
	if a != 0 && b != 0 && a != b {
		run.problem("cart %s: two checkouts at once made two orders, %d and %d", id, a, b)
	}
}

// checkout checks cart id out, again after an error of the order service
// or the network (checkout is idempotent), and returns the order's id.
func checkout(ctx context.Context, cl *cart.Client, run *cartRun, id string) int64 {
	var err error
	for attempt := range 6 {
		if attempt > 0 {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return 0
			}
		}
		var res cart.CheckoutResult
		if res, err = cl.Checkout(ctx, id); err == nil {
			if res.Order == nil {
				run.problem("cart %s: checkout answered without an order", id)
				return 0
			}
			return res.Order.ID
		}
		var he *cart.HTTPError
		if errors.As(err, &he) && he.Status/100 == 4 {
			break
		}
	}
	run.problem("cart %s: checkout: %v", id, err)
	return 0
}

// settleCarts checks out again every cart whose order was still pending
// when its checkout answered (recording the outcome, OrderSettled), waits
// for the read model to catch up, and returns what is still unfinished.
func (d *Demo) settleCarts(ctx context.Context, n int) []string {
	cl := &cart.Client{URL: d.carts.URL(), HTTP: &http.Client{}}
	var stuck []string
	for i := range n {
		id := cartID(d.cfg.Seed, i)
		c, err := cl.Get(ctx, id)
		if err != nil {
			continue // never created: reported by placeCarts
		}
		if c.Status == cart.StatusCompleted || c.Status == cart.StatusCancelled {
			continue
		}
		if res, err := cl.Checkout(ctx, id); err != nil {
			stuck = append(stuck, fmt.Sprintf("cart %s: %s, checkout: %v", id, c.Status, err))
		} else if st := res.Cart.Status; st != cart.StatusCompleted && st != cart.StatusCancelled {
			stuck = append(stuck, fmt.Sprintf("cart %s: %s", id, st))
		}
	}
	deadline := time.Now().Add(d.cfg.QuiesceTimeout)
	for {
		lag, err := d.carts.ReadModel().Lag(ctx)
		if err == nil && lag.Events == 0 {
			return stuck
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return append(stuck, fmt.Sprintf("read model: %d events behind the event store (%v)", lag.Events, err))
		}
		d.carts.ReadModel().Runner().Notify()
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// verifyCarts checks the carts against the orders and the read model
// against the events: every cart's order exists, with the cart's lines,
// total and outcome; every order belongs to exactly one cart; every row of
// the read model equals the fold of the events (cart.ReadModel.Verify);
// and the sales it shows are those of the completed orders.
func (d *Demo) verifyCarts(ctx context.Context, n int) []string {
	var v []string
	owner := map[int64]string{}
	for i := range n {
		id := cartID(d.cfg.Seed, i)
		c, err := d.carts.Load(ctx, id)
		if err != nil {
			v = append(v, fmt.Sprintf("cart %s: %v", id, err))
			continue
		}
		if !c.Exists() || c.OrderID == 0 {
			continue // not checked out: reported as a problem or stuck
		}
		if other, dup := owner[c.OrderID]; dup {
			v = append(v, fmt.Sprintf("order %d belongs to carts %s and %s", c.OrderID, other, id))
		}
		owner[c.OrderID] = id
		o, err := d.sh.Orders.Get(ctx, c.OrderID)
		if err != nil {
			v = append(v, fmt.Sprintf("cart %s: order %d: %v", id, c.OrderID, err))
			continue
		}
		if want := string(c.Status); (o.Status == order.Completed || o.Status == order.Cancelled) && string(o.Status) != want {
			v = append(v, fmt.Sprintf("cart %s says %s, its order %d is %s", id, want, o.ID, o.Status))
		}
		if o.Total != c.Total || o.UserID != c.UserID || !sameLines(c.Lines, o.Items) {
			v = append(v, fmt.Sprintf("cart %s (user %d, %v, total %d) does not match its order %d (user %d, %v, total %d)",
				id, c.UserID, c.Lines, c.Total, o.ID, o.UserID, o.Items, o.Total))
		}
	}
	all, err := d.sh.Orders.List(ctx, "")
	if err != nil {
		return append(v, "cannot list orders: "+err.Error())
	}
	want := map[int64]cart.SalesRow{}
	for _, o := range all {
		if _, ok := owner[o.ID]; !ok {
			v = append(v, fmt.Sprintf("order %d belongs to no cart", o.ID))
		}
		if o.Status != order.Completed {
			continue
		}
		for _, it := range o.Items {
			s := want[it.ProductID]
			s.ProductID = it.ProductID
			s.Units += it.Quantity
			s.Revenue += it.Quantity * it.Price
			s.Orders++
			want[it.ProductID] = s
		}
	}
	diffs, err := d.carts.ReadModel().Verify(ctx)
	if err != nil {
		return append(v, "cannot verify the read model: "+err.Error())
	}
	v = append(v, diffs...)
	sales, err := d.carts.ReadModel().Sales(ctx)
	if err != nil {
		return append(v, "cannot read the sales: "+err.Error())
	}
	got := map[int64]cart.SalesRow{}
	for _, s := range sales {
		got[s.ProductID] = s
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if got[p] != want[p] {
			v = append(v, fmt.Sprintf("read model: product %d sales %+v, the completed orders say %+v", p, got[p], want[p]))
		}
		delete(got, p)
	}
	for p, s := range got {
		v = append(v, fmt.Sprintf("read model: product %d sales %+v without a completed order", p, s))
	}
	return v
}

func sameLines(lines []cart.Line, items []order.Item) bool {
	if len(lines) != len(items) {
		return false
	}
	m := map[int64]int64{}
	for _, l := range lines {
		m[l.ProductID] = l.Quantity
	}
	for _, it := range items {
		if m[it.ProductID] != it.Quantity {
			return false
		}
	}
	return true
}

// cartExample is one cancelled cart's stream, as `dtx cart show` prints it.
func (d *Demo) cartExample(ctx context.Context, n int) []string {
	for i := range n {
		id := cartID(d.cfg.Seed, i)
		c, err := d.carts.Load(ctx, id)
		if err != nil || c.Status != cart.StatusCancelled {
			continue
		}
		cl := &cart.Client{URL: d.carts.URL()}
		sv, err := cl.Stream(ctx, id)
		if err != nil {
			return nil
		}
		lags, err := cl.Projections(ctx)
		if err != nil {
			return nil
		}
		var b strings.Builder
		cart.WriteStream(&b, sv, lags)
		out := []string{fmt.Sprintf("\nOne cancelled cart, as its events say (dtx cart show --url %s %s):", d.carts.URL(), id)}
		for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			out = append(out, "  "+l)
		}
		return out
	}
	return nil
}
