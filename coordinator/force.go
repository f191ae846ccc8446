package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/saga"
)

// ForcedReason starts the reason of a transaction aborted by force.
const ForcedReason = "aborted by operator"

// OutcomeNeedsHuman is the outcome of the history events a forced abort
// writes for each branch it leaves unresolved.
const OutcomeNeedsHuman = "needs-human"

// AbortOptions is an operator's abort request (see AbortWith).
type AbortOptions struct {
	// Reason is the operator's own words (optional).
	Reason string
	// Force stops the transaction where it stands instead of compensating.
	Force bool
	// Operator names who aborts, and From where the request came from
	// (e.g. the remote address); both are recorded with a forced abort.
	Operator, From string
}

// AbortWith aborts a transaction. Without o.Force it is Abort. With it, any
// unfinished transaction driven here is stopped where it stands: its calls
// in flight are cancelled (calls waiting for a slot are dropped), what they
// answered is recorded, and it is marked failed with the reason
// "aborted by operator" (ForcedReason) followed by who did it and o.Reason,
// in one write together with a "needs-human" event (OutcomeNeedsHuman) for
// every branch whose action ran or may have run and was not compensated,
// which AbortWith returns. Nothing is compensated: those branches are for a
// human. A transaction nobody drives (its lease expired or was released)
// is leased here for it first. It fails with dtx.ErrNotFound,
// dtx.ErrFinished, or ErrNotDrivenHere when another coordinator holds its
// lease (retry there, or once the lease expires).
func (c *Coordinator) AbortWith(ctx context.Context, gid string, o AbortOptions) ([]api.UnresolvedBranch, error) {
	if !o.Force {
		return nil, c.Abort(ctx, gid, o.Reason)
	}
	tx, _, err := c.store.Get(ctx, gid)
	if err != nil {
		return nil, err
	}
	if tx.Status.Terminal() {
		return nil, dtx.ErrFinished
	}
	c.mu.Lock()
	r := c.active[gid]
	c.mu.Unlock()
	if r == nil {
		unresolved, err := c.forceUndriven(ctx, gid, &o)
		if !errors.Is(err, errNotClaimed) {
			return unresolved, err
		}
		c.mu.Lock()
		r = c.active[gid] // our recovery may have just taken it
		c.mu.Unlock()
		if r == nil {
			return nil, ErrNotDrivenHere
		}
	}
	req := abortReq{force: &o, resp: make(chan error, 1), unresolved: make(chan []api.UnresolvedBranch, 1)}
	select {
	case r.abort <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
		return nil, dtx.ErrFinished
	}
	select {
	case err := <-req.resp:
		if err != nil {
			return nil, err
		}
		return <-req.unresolved, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errNotClaimed: forceUndriven could not lease the transaction.
var errNotClaimed = errors.New("coordinator: lease held elsewhere")

// forceUndriven carries out a forced abort of a transaction no coordinator
// drives (its lease expired or was released: waiting for recovery, say):
// it leases it (errNotClaimed if it cannot) and marks it failed in one
// write. Nothing is in flight; successes may be missing from the store, so
// the unresolved branches are judged as after a recovery.
func (c *Coordinator) forceUndriven(ctx context.Context, gid string, o *AbortOptions) ([]api.UnresolvedBranch, error) {
	c.mu.Lock()
	if c.forcing[gid] {
		c.mu.Unlock()
		return nil, errNotClaimed
	}
	c.forcing[gid] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.forcing, gid)
		c.mu.Unlock()
	}()
	now := c.cfg.Now()
	ok, err := c.store.ClaimOne(ctx, c.cfg.Owner, gid, now, now.Add(c.cfg.LeaseTTL))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotClaimed
	}
	wctx := context.WithoutCancel(ctx) // we hold the lease: finish or release it
	tx, br, err := c.store.Get(wctx, gid)
	if err != nil {
		c.store.Release(wctx, c.cfg.Owner, gid)
		return nil, err
	}
	var spec saga.Spec
	if err := json.Unmarshal(tx.Spec, &spec); err != nil || len(spec.Steps) != len(br) {
		c.store.Release(wctx, c.cfg.Owner, gid)
		return nil, fmt.Errorf("decode spec %s: steps %d, branches %d: %v", gid, len(spec.Steps), len(br), err)
	}
	unresolved := unresolvedBranches(&spec, br, true)
	reason := forcedReason(o, len(unresolved))
	var evs []dtx.Event
	for _, u := range unresolved {
		evs = append(evs, dtx.Event{At: now, Branch: u.Branch, Op: spec.Steps[u.Branch].WireOp(dtx.OpAction),
			Outcome: OutcomeNeedsHuman, Detail: u.Why})
	}
	evs = append(evs, dtx.Event{At: now, Branch: -1, Outcome: string(dtx.StatusFailed), Detail: reason})
	if err := c.store.Apply(wctx, dtx.Update{GID: gid, Owner: c.cfg.Owner, At: now, Events: evs,
		Status: dtx.StatusFailed, Reason: reason, Release: true}); err != nil {
		c.store.Release(wctx, c.cfg.Owner, gid)
		return nil, err
	}
	c.cfg.Observer.TxFinished(tx.Pattern, dtx.StatusFailed)
	c.log.Warn("transaction aborted by force", slog.String("gid", gid), slog.String("operator", o.Operator),
		slog.String("from", o.From), slog.String("reason", o.Reason), slog.Int("unresolved", len(unresolved)))
	return unresolved, nil
}

func (c *Coordinator) isForcing(gid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forcing[gid]
}

// forceFail carries out a forced abort in the driver (see AbortWith).
func (r *run) forceFail(req abortReq) error {
	if r.tx.Status.Terminal() {
		return dtx.ErrFinished
	}
	o := req.force
	// Cancel the calls in flight and collect what they answered: a call
	// cut short is an unknown outcome, one that never got a slot was not
	// made.
	r.cancel()
	changed := map[int]bool{}
	var evs []dtx.Event
	for len(r.inflight) > 0 {
		res := <-r.results
		delete(r.inflight, res.call)
		if res.notCalled {
			continue
		}
		i, op := res.call.Index, res.call.Op
		b := &r.br[i]
		attempts, state := &b.ActionAttempts, &b.Action
		if op == dtx.OpCompensate {
			attempts, state = &b.CompensateAttempts, &b.Compensate
		}
		*attempts++
		if res.outcome.Err != nil {
			b.LastError = res.outcome.Err.Error()
		}
		switch res.outcome.Class {
		case dtx.Success:
			*state = dtx.BranchSucceeded
		case dtx.Failure:
			if op == dtx.OpAction {
				*state = dtx.BranchFailed
			}
		}
		changed[i] = true
		evs = append(evs, dtx.Event{At: r.c.cfg.Now(), Branch: i, Op: r.spec.Steps[i].WireOp(op),
			Outcome: res.outcome.Class.String(), Detail: errText(res.outcome.Err), Duration: res.took})
	}
	clear(r.retryAt)
	unresolved := unresolvedBranches(r.spec, r.br, r.recovered)
	now := r.c.cfg.Now()
	for _, u := range unresolved {
		evs = append(evs, dtx.Event{At: now, Branch: u.Branch, Op: r.spec.Steps[u.Branch].WireOp(dtx.OpAction),
			Outcome: OutcomeNeedsHuman, Detail: u.Why})
	}
	br := make([]dtx.Branch, 0, len(changed))
	for i := range changed {
		br = append(br, r.br[i])
	}
	if err := r.persist(br, evs, dtx.StatusFailed, forcedReason(o, len(unresolved))); err != nil {
		return err
	}
	r.c.log.Warn("transaction aborted by force", slog.String("gid", r.gid), slog.String("operator", o.Operator),
		slog.String("from", o.From), slog.String("reason", o.Reason), slog.Int("unresolved", len(unresolved)))
	req.unresolved <- unresolved
	return nil
}

// forcedReason is the reason a forced abort records: ForcedReason, who and
// from where, the operator's words, and how many branches need a human.
func forcedReason(o *AbortOptions, unresolved int) string {
	var b strings.Builder
	b.WriteString(ForcedReason)
	if o.Operator != "" {
		fmt.Fprintf(&b, " %q", o.Operator)
	}
	if o.From != "" {
		fmt.Fprintf(&b, " from %s", o.From)
	}
	if o.Reason != "" {
		b.WriteString(": " + o.Reason)
	}
	switch unresolved {
	case 0:
		b.WriteString(" (nothing left to compensate)")
	case 1:
		b.WriteString(" (1 branch needs a human)")
	default:
		fmt.Fprintf(&b, " (%d branches need a human)", unresolved)
	}
	return b.String()
}

// unresolvedBranches lists the branches whose action ran or may have run
// and whose compensation did not succeed. A recovered driver may not know
// every success (successes are written lazily), so a pending step that may
// have run by saga.MayHaveRun counts too.
func unresolvedBranches(s *saga.Spec, br []dtx.Branch, recovered bool) []api.UnresolvedBranch {
	var may []bool
	if recovered {
		may = saga.MayHaveRun(s, br)
	}
	pivot := saga.PastPivot(s, br)
	var out []api.UnresolvedBranch
	for i, b := range br {
		compensable := s.Steps[i].Compensate != ""
		if (compensable && b.Compensate.Done()) || b.Action == dtx.BranchSkipped || b.Action == dtx.BranchFailed {
			continue // undone, never run, or refused
		}
		var why string
		switch {
		case b.Action == dtx.BranchSucceeded:
			why = "action succeeded"
		case b.ActionAttempts > 0:
			why = fmt.Sprintf("action outcome unknown after %d call(s): it may have run", b.ActionAttempts)
		case recovered && may[i] && (compensable || pivot):
			why = "action may have run before the coordinator restarted"
		default:
			continue // never called
		}
		if !compensable {
			why += "; the step has no compensation"
		} else if b.CompensateAttempts > 0 {
			why += fmt.Sprintf("; compensation outcome unknown after %d call(s)", b.CompensateAttempts)
		} else {
			why += "; not compensated"
		}
		if b.LastError != "" {
			why += "; last error: " + b.LastError
		}
		out = append(out, api.UnresolvedBranch{Branch: i, Name: s.Steps[i].Name, Why: why})
	}
	return out
}
