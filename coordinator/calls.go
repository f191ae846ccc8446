package coordinator

import "context"

// The call pool: Config.MaxCalls slots, one per branch call in flight. A
// call that finds none free waits for one (back-pressure), so hanging
// participants can pin at most MaxCalls connections however many
// transactions wait on them.

// acquireCall takes a call slot, waiting for one. It reports false, without
// a slot, once ctx ends (the transaction was aborted by force, or in-flight
// calls are cancelled) or the coordinator is stopping: a call not yet
// started is not started during shutdown.
func (c *Coordinator) acquireCall(ctx context.Context) bool {
	if c.isStopping() || ctx.Err() != nil {
		return false
	}
	select {
	case c.calls <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-c.stopping:
		return false
	}
}

// releaseCall frees a slot taken by acquireCall.
func (c *Coordinator) releaseCall() { <-c.calls }

// CallsInFlight returns how many branch calls are in flight now (at most
// Config.MaxCalls).
func (c *Coordinator) CallsInFlight() int { return len(c.calls) }
