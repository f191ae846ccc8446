package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/backoff"
)

// Request is one order to place.
type Request struct {
	// Key is its idempotency key.
	Key string
	Req order.PlaceRequest
	// Dupe: also sent a second time with the same key, at the same
	// moment; both must yield the same order.
	Dupe bool
}

// Placer places orders through the order service's HTTP API. A request
// without an answer (connection refused or reset, timeout, 5xx) is sent
// again with the same idempotency key, which guarantees one order, until
// it is answered, Attempts are spent or the give-up time passes. A refusal
// (4xx) or spent attempts are problems: violations of the run.
type Placer struct {
	Client *order.Client
	// Attempts bounds the sends of one request; 0: until answered or
	// given up (see GiveUpAt).
	Attempts int
	// Backoff is the first wait between sends, doubled up to MaxBackoff
	// (with jitter: see internal/backoff).
	Backoff, MaxBackoff time.Duration

	mu       sync.Mutex
	keys     map[string]int64 // idempotency key -> order id (0: unanswered)
	problems []string

	// Requests counts sends, Retries the sends after a request's first,
	// Duplicates the requests sent twice at once.
	Requests, Retries, Duplicates atomic.Int64
	giveUp                        atomic.Int64 // unix nanos; 0: never
}

// Place sends r (twice at once if r.Dupe) until answered, with wait (for
// the order's outcome). It returns the order's id, 0 if unanswered.
func (p *Placer) Place(ctx context.Context, r Request, wait bool) int64 {
	p.mu.Lock()
	if p.keys == nil {
		p.keys = map[string]int64{}
	}
	p.keys[r.Key] = 0
	p.mu.Unlock()
	if !r.Dupe {
		id, _ := p.send(ctx, r, wait)
		return p.answered(r.Key, id)
	}
	p.Duplicates.Add(1)
	var ids [2]int64
	var oks [2]bool
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { ids[i], oks[i] = p.send(ctx, r, wait) })
	}
	wg.Wait()
	if oks[0] && oks[1] && ids[0] != ids[1] {
		p.Problem(fmt.Sprintf("idempotency key %s sent twice at once created two orders (%d and %d)", r.Key, ids[0], ids[1]))
	}
	if oks[0] {
		return p.answered(r.Key, ids[0])
	}
	return p.answered(r.Key, ids[1])
}

// send retries one request until it is answered; ok is false if it gave
// up (or a definite refusal came back, recorded as a problem).
func (p *Placer) send(ctx context.Context, r Request, wait bool) (id int64, ok bool) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.Retries.Add(1)
		}
		p.Requests.Add(1)
		o, err := p.Client.Place(ctx, r.Req, r.Key, wait)
		if err == nil {
			return o.ID, true
		}
		var he *order.HTTPError
		if errors.As(err, &he) && he.Status < 500 {
			p.Problem(fmt.Sprintf("order request %s refused: %v", r.Key, err))
			return 0, false
		}
		if p.Attempts > 0 && attempt+1 >= p.Attempts && ctx.Err() == nil {
			p.Problem(fmt.Sprintf("order request %s failed: %v", r.Key, err))
			return 0, false
		}
		if g := p.giveUp.Load(); ctx.Err() != nil || (g != 0 && time.Now().UnixNano() > g) {
			return 0, false
		}
		select {
		case <-time.After(backoff.Delay(p.Backoff, p.MaxBackoff, attempt+1)):
		case <-ctx.Done():
			return 0, false
		}
	}
}

func (p *Placer) answered(key string, id int64) int64 {
	if id != 0 {
		p.mu.Lock()
		p.keys[key] = id
		p.mu.Unlock()
	}
	return id
}

// Problem records a violation seen while placing.
func (p *Placer) Problem(s string) {
	p.mu.Lock()
	p.problems = append(p.problems, s)
	p.mu.Unlock()
}

// Problems are the violations seen while placing.
func (p *Placer) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// GiveUpAt makes requests still unanswered at t stop retrying.
func (p *Placer) GiveUpAt(t time.Time) { p.giveUp.Store(t.UnixNano()) }

// Keys is the number of idempotency keys sent.
func (p *Placer) Keys() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// Unanswered lists the keys whose request never got an answer.
func (p *Placer) Unanswered() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k, id := range p.keys {
		if id == 0 {
			out = append(out, k)
		}
	}
	return out
}
