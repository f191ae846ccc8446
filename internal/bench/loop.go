package bench

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// closedLoop is a set of closed-loop clients: each calls one, waits for
// its answer and calls again, until stop. Only calls that end while
// measuring is set are counted (the warm-up's are not).
type closedLoop struct {
	measuring   atomic.Bool
	count, errs atomic.Int64

	mu  sync.Mutex
	lat []time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startClosedLoop starts clients workers calling one(ctx, worker, call).
func startClosedLoop(ctx context.Context, clients int, one func(ctx context.Context, w, i int) bool) *closedLoop {
	l := &closedLoop{}
	runCtx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	for w := range clients {
		l.wg.Go(func() {
			var local []time.Duration
			defer func() { l.mu.Lock(); l.lat = append(l.lat, local...); l.mu.Unlock() }()
			for i := 0; runCtx.Err() == nil; i++ {
				t0 := time.Now()
				ok := one(runCtx, w, i)
				took := time.Since(t0)
				if !l.measuring.Load() || runCtx.Err() != nil {
					continue
				}
				if ok {
					l.count.Add(1)
					local = append(local, took)
				} else {
					l.errs.Add(1)
				}
			}
		})
	}
	return l
}

// stop ends the clients, waits for them and returns the latencies of the
// counted calls, sorted. It is idempotent.
func (l *closedLoop) stop() []time.Duration {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		sort.Slice(l.lat, func(i, j int) bool { return l.lat[i] < l.lat[j] })
	})
	return l.lat
}
