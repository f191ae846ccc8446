package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/dtxhq/dtx/examples/shop/load"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// driver places the chaos run's orders (load.ChaosMix) through the order
// service's HTTP API, each with its own idempotency key, at a rate or with
// a number of waiting clients. A request without an answer is sent again
// with the same key until it is answered or finish's deadline passes.
type driver struct {
	*load.Placer
	seed uint64
	wg   sync.WaitGroup
}

func newDriver(url string, seed uint64) *driver {
	return &driver{
		Placer: &load.Placer{
			Client:  &order.Client{URL: url, HTTP: &http.Client{Timeout: 40 * time.Second}},
			Backoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		},
		seed: seed,
	}
}

// draw makes the i-th order of a worker; one in ten is also sent a second
// time, concurrently.
func (l *driver) draw(rng *rand.Rand, worker, i int) load.Request {
	req := load.ChaosMix.Draw(rng)
	return load.Request{
		Key:  fmt.Sprintf("chaos-%d-%d-%d", l.seed, worker, i),
		Req:  req,
		Dupe: rng.IntN(10) == 0,
	}
}

// startRate places rate orders per second until gen is done (open loop:
// it does not wait for the transactions). Requests still unanswered keep
// being retried until finish's deadline.
func (l *driver) startRate(gen, ctx context.Context, rate float64) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.runRate(gen, ctx, rate)
	}()
}

func (l *driver) runRate(gen, ctx context.Context, rate float64) {
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
			l.Place(ctx, r, false)
		}()
	}
}

// startConcurrent starts n workers that each place an order and wait for
// its outcome, then the next, until gen is done (closed loop).
func (l *driver) startConcurrent(gen, ctx context.Context, n int) {
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(l.seed, uint64(w)+100))
			for i := 0; gen.Err() == nil; i++ {
				l.Place(ctx, l.draw(rng, w+1, i), true)
			}
		}()
	}
}

// finish lets outstanding requests retry until deadline, then waits for
// them.
func (l *driver) finish(deadline time.Time) {
	l.GiveUpAt(deadline)
	l.wg.Wait()
}
