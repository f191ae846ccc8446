package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/backoff"
)

// load places orders through the order service's HTTP API, each with its
// own idempotency key. A request without an answer (connection refused or
// reset, timeout, 5xx) is sent again with the same key until it is
// answered or the give-up time passes: the key guarantees one order.
type load struct {
	client *order.Client
	seed   uint64

	mu       sync.Mutex
	keys     map[string]int64 // idempotency key -> order id (0: unanswered)
	problems []string
	wg       sync.WaitGroup

	requests, retries, duplicates atomic.Int64
	giveUp                        atomic.Int64 // unix nanos; 0: never
}

func newLoad(url string, seed uint64) *load {
	return &load{
		client: &order.Client{URL: url, HTTP: &http.Client{Timeout: 40 * time.Second}},
		seed:   seed,
		keys:   map[string]int64{},
	}
}

// request is one order to place.
type request struct {
	key  string
	req  order.PlaceRequest
	dupe bool // also sent a second time, concurrently
}

// draw makes the i-th order of a worker: mostly orders that can succeed,
// some for the declined customer (2), the nearly broke one (3), the scarce
// product (4) or the sold-out one (5), so that the run also compensates
// for business reasons.
func (l *load) draw(rng *rand.Rand, worker, i int) request {
	users := []int64{1, 1, 1, 1, 4, 4, 4, 3, 3, 2}
	products := []int64{1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 5}
	var items []order.Item
	seen := map[int64]bool{}
	for range 1 + rng.IntN(2) {
		p := products[rng.IntN(len(products))]
		if !seen[p] {
			seen[p] = true
			items = append(items, order.Item{ProductID: p, Quantity: 1 + rng.Int64N(2)})
		}
	}
	return request{
		key:  fmt.Sprintf("chaos-%d-%d-%d", l.seed, worker, i),
		req:  order.PlaceRequest{UserID: users[rng.IntN(len(users))], Items: items},
		dupe: rng.IntN(10) == 0,
	}
}

// place sends r (twice at once if r.dupe) until answered, with wait.
func (l *load) place(ctx context.Context, r request, wait bool) {
	l.mu.Lock()
	l.keys[r.key] = 0
	l.mu.Unlock()
	if !r.dupe {
		if id, ok := l.send(ctx, r, wait); ok {
			l.answered(r.key, id)
		}
		return
	}
	l.duplicates.Add(1)
	var ids [2]int64
	var oks [2]bool
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); ids[i], oks[i] = l.send(ctx, r, wait) }()
	}
	wg.Wait()
	if oks[0] && oks[1] && ids[0] != ids[1] {
		l.problem(fmt.Sprintf("idempotency key %s sent twice at once created two orders (%d and %d)", r.key, ids[0], ids[1]))
	}
	if oks[0] {
		l.answered(r.key, ids[0])
	} else if oks[1] {
		l.answered(r.key, ids[1])
	}
}

// send retries one request until it is answered; ok is false if it gave
// up (or a definite refusal came back, recorded as a problem).
func (l *load) send(ctx context.Context, r request, wait bool) (id int64, ok bool) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			l.retries.Add(1)
		}
		l.requests.Add(1)
		o, err := l.client.Place(ctx, r.req, r.key, wait)
		if err == nil {
			return o.ID, true
		}
		var he *order.HTTPError
		if errors.As(err, &he) && he.Status < 500 {
			l.problem(fmt.Sprintf("order request %s refused: %v", r.key, err))
			return 0, false
		}
		if g := l.giveUp.Load(); ctx.Err() != nil || (g != 0 && time.Now().UnixNano() > g) {
			return 0, false
		}
		select {
		case <-time.After(backoff.Delay(50*time.Millisecond, time.Second, attempt+1)):
		case <-ctx.Done():
			return 0, false
		}
	}
}

func (l *load) answered(key string, id int64) {
	l.mu.Lock()
	l.keys[key] = id
	l.mu.Unlock()
}

func (l *load) problem(p string) {
	l.mu.Lock()
	l.problems = append(l.problems, p)
	l.mu.Unlock()
}

// startRate places rate orders per second until gen is done (open loop:
// it does not wait for the transactions). Requests still unanswered keep
// being retried until finish's deadline.
func (l *load) startRate(gen, ctx context.Context, rate float64) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.runRate(gen, ctx, rate)
	}()
}

func (l *load) runRate(gen, ctx context.Context, rate float64) {
	rng := rand.New(rand.NewPCG(l.seed, 1))
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	sem := make(chan struct{}, 512)
	for i := 0; ; i++ {
		select {
		case <-gen.Done():
			return
		case <-t.C:
		}
		r := l.draw(rng, 0, i)
		select {
		case sem <- struct{}{}:
		case <-gen.Done():
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-sem }()
			l.place(ctx, r, false)
		}()
	}
}

// startConcurrent starts n workers that each place an order and wait for
// its outcome, then the next, until gen is done (closed loop).
func (l *load) startConcurrent(gen, ctx context.Context, n int) {
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(l.seed, uint64(w)+100))
			for i := 0; gen.Err() == nil; i++ {
				l.place(ctx, l.draw(rng, w+1, i), true)
			}
		}()
	}
}

// finish lets outstanding requests retry until deadline, then waits for
// them.
func (l *load) finish(deadline time.Time) {
	l.giveUp.Store(deadline.UnixNano())
	l.wg.Wait()
}

// unanswered lists the keys whose request never got an answer.
func (l *load) unanswered() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, id := range l.keys {
		if id == 0 {
			out = append(out, k)
		}
	}
	return out
}
