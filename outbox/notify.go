package outbox

import (
	"sync"
	"time"
)

// running is the Relays running in this process, per outbox table, so
// that Outbox.Add and Outbox.Notify can wake them without a handle on
// them.
var running struct {
	mu     sync.Mutex
	relays map[queryKey]map[*Relay]struct{}
}

// register adds r to the running relays of its table; the returned
// function removes it.
func register(r *Relay) (unregister func()) {
	k := queryKey{r.ob.Dialect, r.ob.Table}
	running.mu.Lock()
	defer running.mu.Unlock()
	if running.relays == nil {
		running.relays = map[queryKey]map[*Relay]struct{}{}
	}
	if running.relays[k] == nil {
		running.relays[k] = map[*Relay]struct{}{}
	}
	running.relays[k][r] = struct{}{}
	return func() {
		running.mu.Lock()
		defer running.mu.Unlock()
		delete(running.relays[k], r)
		if len(running.relays[k]) == 0 {
			delete(running.relays, k)
		}
	}
}

// Notify wakes the relays of o's table running in this process (see
// Relay.Notify), to publish at once what a transaction that just
// committed added. Add already wakes them, before the commit: a woken relay
// that finds nothing looks again at short, growing intervals (1 ms, 2 ms,
// 4 ms… up to 128 ms), so that a commit right after Add is
// published within a few milliseconds without Notify; Notify after the
// commit saves that wait. Relays in other processes are not woken: they
// find the rows at their next poll, or on PostgreSQL at once with
// NotifyOnCommit.
// Notify never blocks.
func (o Outbox) Notify() {
	k := queryKey{o.Dialect, o.Table}
	running.mu.Lock()
	defer running.mu.Unlock()
	for r := range running.relays[k] {
		r.Notify()
	}
}

// A woken relay that found no rows (the commit that woke it may not have
// landed yet) looks again after firstRecheck, then after twice as long
// each time up to maxRecheck (about 0.26 s in all), then goes back to its
// PollInterval.
const (
	firstRecheck = time.Millisecond
	maxRecheck   = 128 * time.Millisecond
)
