package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/internal/backoff"
	"github.com/dtxhq/dtx/saga"
)

// run drives one saga. It is the only goroutine that touches its fields;
// branch calls run in their own goroutines and report on results.
type run struct {
	c        *Coordinator
	gid      string
	spec     *saga.Spec
	tx       dtx.Tx
	br       []dtx.Branch
	inflight map[saga.Call]bool
	retryAt  map[saga.Call]time.Time
	// parked operations exhausted their retry policy and are not called
	// again until an operator's RetryNow; budgetBase is each operation's
	// attempt count when an operator last released it (its policy's
	// max_attempts counts from there).
	parked     map[saga.Call]bool
	budgetBase map[saga.Call]int
	results    chan result
	abort      chan abortReq
	done       chan struct{}
	draining   bool
	// recovered: resumed from the store, where successes may be missing
	// (they are written lazily), so compensation must be conservative.
	recovered bool
	// dirty branches and events not yet written: an action's success is
	// folded into the saga's next write instead of costing a commit of its
	// own. Any other outcome is written at once, with them.
	dirty  map[int]bool
	unsent []dtx.Event
	// retry asks the driver to retry calls waiting on backoff now.
	retry chan chan int
	// ctx is the context of this saga's calls: cancelled when the driver
	// stops, when the saga is aborted by force, or with hardCtx. Once the
	// driver runs, it carries the transaction's span (tracing.go).
	ctx    context.Context
	cancel context.CancelFunc
}

type result struct {
	call    saga.Call
	outcome dtx.Outcome
	took    time.Duration
	// span is the call's span, ended by handle once the outcome is
	// classified; end is when the call returned.
	span trace.Span
	end  time.Time
	// notCalled: the call gave up waiting for a slot of the call pool
	// (shutdown or forced abort); the participant was not called.
	notCalled bool
}

type abortReq struct {
	reason string
	resp   chan error
	// force: stop the saga where it stands (force.go).
	force *AbortOptions
	// unresolved receives the branches a forced abort leaves for a human.
	unresolved chan []api.UnresolvedBranch
}

func (c *Coordinator) newRun(tx *dtx.Tx, spec *saga.Spec, br []dtx.Branch, recovered bool) *run {
	ctx, cancel := context.WithCancel(c.hardCtx)
	return &run{
		ctx: ctx, cancel: cancel,
		retry:     make(chan chan int),
		recovered: recovered, dirty: map[int]bool{},
		c: c, gid: tx.GID, spec: spec, tx: *tx,
		br:       append([]dtx.Branch(nil), br...),
		inflight: map[saga.Call]bool{},
		// retryAt, parked and budgetBase are made on their first entry
		// (setIn): a transaction without retries never needs them.
		results: make(chan result, len(spec.Steps)),
		abort:   make(chan abortReq),
		done:    make(chan struct{}),
	}
}

// setIn sets (*m)[k] = v, making the map first if it is nil.
func setIn[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[k] = v
}

// busy tells the machine which calls not to issue: in flight or backing off.
func (r *run) busy(c saga.Call) bool {
	if r.inflight[c] || r.parked[c] {
		return true
	}
	_, waiting := r.retryAt[c]
	return waiting
}

func (r *run) loop() {
	var final *dtx.TxDetail
	var span trace.Span
	r.ctx, span = r.c.startTxSpan(r.ctx, &r.tx, r.spec, r.recovered)
	defer func() {
		endTxSpan(span, r.tx.Status)
		r.cancel()
		close(r.done)
		r.c.runDone(r.gid, final)
	}()
	stopping := r.c.stopping // set to nil once seen, so draining does not spin
	// One wait per wake-up time: most rounds keep the same next wake (the
	// deadline, or the same retry), and re-arming a wait every round would
	// allocate a timer per branch result.
	var wakeAt time.Time
	var wakeC <-chan time.Time // nil: nothing to wake for; never fires
	for {
		if r.tx.Status.Terminal() {
			final = &dtx.TxDetail{Tx: r.tx, Branches: r.br}
			return
		}
		if !r.draining {
			// A saga resumed past its deadline compensates before it
			// calls anything.
			if err := r.checkDeadline(r.c.cfg.Now()); err != nil {
				r.stopOnError(err)
				return
			}
			if err := r.step(); err != nil {
				r.stopOnError(err)
				return
			}
			if r.tx.Status.Terminal() {
				continue
			}
		}
		if r.draining && len(r.inflight) == 0 {
			// Make everything we know durable, then let another coordinator
			// (or our next start) take over immediately.
			if len(r.dirty) > 0 || len(r.unsent) > 0 {
				if err := r.persist(nil, nil, "", ""); err != nil {
					r.stopOnError(err)
					return
				}
			}
			r.c.store.Release(context.Background(), r.c.cfg.Owner, r.gid)
			return
		}
		if wake, ok := r.nextWake(); !ok {
			wakeC, wakeAt = nil, time.Time{}
		} else if wakeC == nil || !wake.Equal(wakeAt) {
			wakeC, wakeAt = r.c.cfg.After(max(wake.Sub(r.c.cfg.Now()), 0)), wake
		}
		select {
		case res := <-r.results:
			if err := r.handle(res); err != nil {
				r.stopOnError(err)
				return
			}
		case <-wakeC:
			wakeC = nil // fired: the next round arms the next wake
			now := r.c.cfg.Now()
			for call, at := range r.retryAt {
				if !at.After(now) {
					delete(r.retryAt, call)
				}
			}
			if err := r.checkDeadline(now); err != nil {
				r.stopOnError(err)
				return
			}
		case req := <-r.abort:
			err := r.doAbort(req)
			req.resp <- err
			if req.force != nil && err != nil && !errors.Is(err, dtx.ErrFinished) {
				// Its calls are cancelled: it cannot go on.
				r.stopOnError(err)
				return
			}
		case resp := <-r.retry:
			// Operator's "retry now": every call waiting on backoff is
			// due; the next step issues them.
			// Parked operations get a fresh attempt budget.
			resp <- len(r.retryAt) + len(r.parked)
			clear(r.retryAt)
			for call := range r.parked {
				setIn(&r.budgetBase, call, r.attempts(call))
			}
			clear(r.parked)
			r.c.setParked(r.gid, "")
		case <-stopping:
			r.draining = true
			stopping = nil
		}
	}
}

func (r *run) stopOnError(err error) {
	if errors.Is(err, dtx.ErrLeaseLost) {
		r.c.log.Info("lease lost; another coordinator drives the saga", slog.String("gid", r.gid))
	} else if !r.c.isStopping() {
		r.c.log.Error("saga driver stopped", slog.String("gid", r.gid), slog.Any("err", err))
		r.c.store.Release(context.Background(), r.c.cfg.Owner, r.gid)
	}
	// Wait for our in-flight calls so their goroutines do not outlive us.
	for len(r.inflight) > 0 {
		res := <-r.results
		delete(r.inflight, res.call)
		if res.span != nil {
			res.span.End()
		}
	}
}

// nextWake is the earliest retry or deadline the loop must wake for.
func (r *run) nextWake() (time.Time, bool) {
	var at time.Time
	for _, t := range r.retryAt {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	if r.tx.Status == dtx.StatusRunning && !r.tx.Deadline.IsZero() && !saga.PastPivot(r.spec, r.br) {
		if at.IsZero() || r.tx.Deadline.Before(at) {
			at = r.tx.Deadline
		}
	}
	return at, !at.IsZero()
}

// step asks the machine what is due and starts those calls. A terminal
// decision reached without a call result (e.g. every action was skipped) is
// persisted here.
func (r *run) step() error {
	d := saga.NextWith(r.spec, r.tx.Status, r.br, r.busy, r.recovered)
	if d.Status != "" {
		return r.persist(nil, nil, d.Status, "")
	}
	for _, call := range d.Calls {
		r.start(call)
	}
	return nil
}

func (r *run) start(call saga.Call) {
	if r.mustSucceed(call) && r.exhausted(call, r.attempts(call)) {
		// Resumed with its budget already spent (the parking is not
		// stored): it stays with the operator.
		r.park(call, r.attempts(call), r.br[call.Index].LastError)
		return
	}
	st := r.spec.Steps[call.Index]
	url, attempt := st.Action, r.br[call.Index].ActionAttempts+1
	if call.Op == dtx.OpCompensate {
		url, attempt = st.Compensate, r.br[call.Index].CompensateAttempts+1
	}
	r.inflight[call] = true
	req := dtx.Call{
		GID: r.gid, Branch: st.BranchIndex(call.Index), Op: st.WireOp(call.Op), URL: url, Payload: st.Payload,
		Attempt: attempt, Timeout: r.spec.BranchTimeout.Std(),
	}
	ctx, span := r.startBranchSpan(&req)
	r.c.workers.Go(func() {
		if !r.c.acquireCall(ctx) {
			span.End()
			r.results <- result{call: call, notCalled: true}
			return
		}
		t0 := time.Now()
		out := r.c.transport.Call(ctx, req)
		took := time.Since(t0)
		r.c.releaseCall()
		r.results <- result{call: call, outcome: out, took: took, span: span, end: t0.Add(took)}
	})
}

// handle folds one call result into the state and persists it (together
// with a terminal status if the saga is now finished) before anything else
// is started.
func (r *run) handle(res result) error {
	delete(r.inflight, res.call)
	if res.notCalled {
		return nil // nothing happened; the next step issues it again
	}
	i, op := res.call.Index, res.call.Op
	b := r.br[i]
	wire := r.spec.Steps[i].WireOp(op)
	r.c.cfg.Observer.BranchCall(op, wire, res.outcome.Class, res.took)
	ev := dtx.Event{At: r.c.cfg.Now(), Branch: i, Op: wire, Outcome: res.outcome.Class.String(), Detail: errText(res.outcome.Err), Duration: res.took}
	var status dtx.Status
	var reason string
	attempts := &b.ActionAttempts
	if op == dtx.OpCompensate {
		attempts = &b.CompensateAttempts
	}
	*attempts++
	// A misrouted call (a 404/405 not from a dtx participant) alerts at
	// once, the first time it is seen, rather than after AlertAfter
	// retries: no retry will fix a wrong URL.
	misrouted := errors.Is(res.outcome.Err, dtx.ErrMisrouted)
	newlyMisrouted := misrouted && !strings.Contains(b.LastError, dtx.TypeMisrouted)
	if res.outcome.Err != nil {
		b.LastError = res.outcome.Err.Error()
	}
	if newlyMisrouted {
		r.alert(i, op, *attempts, b.LastError)
	}
	class := res.outcome.Class
	// A status the step's policy names as non-retryable ends its retries.
	nonRetryable := class != dtx.Success && r.spec.Steps[i].Retry.NonRetryable(httpStatus(res.outcome.Err))
	// Operations that may not be given up turn a definite failure into a
	// retry: compensations, and steps past the pivot.
	mustSucceed := r.mustSucceed(res.call)
	if nonRetryable && !mustSucceed {
		class = dtx.Failure
	}
	if class == dtx.Failure && mustSucceed {
		class = dtx.Unknown
	}
	exhausted := class == dtx.Unknown && r.exhausted(res.call, *attempts)
	parkAfter := false
	if exhausted && !mustSucceed && r.tx.Status == dtx.StatusRunning {
		// An action out of attempts is a definite failure: the saga
		// compensates, this step included (it may have run).
		class = dtx.Failure
		b.Action = dtx.BranchFailed
		status = dtx.StatusCompensating
		reason = fmt.Sprintf("step %d (%s) exhausted its %d attempts: %s", i, r.spec.Steps[i].Name, r.maxAttempts(i), res.outcome.Reason())
	}
	switch class {
	case dtx.Success:
		if op == dtx.OpAction {
			b.Action = dtx.BranchSucceeded
		} else {
			b.Compensate = dtx.BranchSucceeded
		}
	case dtx.Failure: // an action of a compensatable step
		b.Action = dtx.BranchFailed
		if r.tx.Status == dtx.StatusRunning && status == "" {
			status = dtx.StatusCompensating
			reason = fmt.Sprintf("step %d (%s) failed: %s", i, r.spec.Steps[i].Name, res.outcome.Reason())
		}
	default: // unknown: retry the same operation later
		if op == dtx.OpAction && r.tx.Status == dtx.StatusCompensating {
			break // the compensation will run instead (the barrier makes a late action a no-op)
		}
		if mustSucceed && (exhausted || nonRetryable) {
			ev.Detail += "; " + r.exhaustedLine(res.call, nonRetryable)
			setIn(&r.parked, res.call, true) // the alert follows the write, below
			parkAfter = true
			break
		}
		setIn(&r.retryAt, res.call, r.c.cfg.Now().Add(r.delay(res.call, *attempts)))
		r.c.cfg.Observer.BranchRetry(op, wire)
		if mustSucceed && *attempts%r.c.cfg.AlertAfter == 0 && !newlyMisrouted {
			r.alert(i, op, *attempts, b.LastError)
		}
	}
	r.br[i] = b
	_, retry := r.retryAt[res.call]
	endBranchSpan(res.span, res.end, class, retry, res.outcome)
	if status == "" {
		// Fold a now-final decision into this write.
		status = saga.NextWith(r.spec, r.tx.Status, r.br, r.busy, r.recovered).Status
		if status == dtx.StatusRunning || status == dtx.StatusCompensating {
			status = ""
		}
	}
	if class == dtx.Success && op == dtx.OpAction && status == "" && r.tx.Status == dtx.StatusRunning &&
		(r.spec.Steps[i].Compensate == "" || !saga.PastPivot(r.spec, r.br)) && r.c.leaseFresh() {
		// Lazy: the dependants may start before this success is durable.
		// After a crash the step is re-run (participants are idempotent)
		// and a recovered saga compensates conservatively (saga.NextWith).
		// Never lazy across the pivot: once steps that cannot be undone may
		// start, the store must know the saga can only move forward. And
		// never lazy when our lease may be stale: a write is what fences a
		// coordinator that lost its lease.
		r.dirty[i] = true
		r.unsent = append(r.unsent, ev)
		return nil
	}
	if err := r.persist([]dtx.Branch{b}, []dtx.Event{ev}, status, reason); err != nil {
		return err
	}
	if parkAfter {
		r.park(res.call, *attempts, b.LastError)
	}
	return nil
}

// mustSucceed reports whether call may never be given up: a compensation,
// or the action of a step past the pivot (such as a TCC confirm).
func (r *run) mustSucceed(c saga.Call) bool {
	return c.Op == dtx.OpCompensate || r.spec.Steps[c.Index].Compensate == ""
}

// attempts is how many times call has been made.
func (r *run) attempts(c saga.Call) int {
	if c.Op == dtx.OpCompensate {
		return r.br[c.Index].CompensateAttempts
	}
	return r.br[c.Index].ActionAttempts
}

// maxAttempts is step i's retry.max_attempts, or the coordinator's default
// (0: unlimited).
func (r *run) maxAttempts(i int) int {
	if p := r.spec.Steps[i].Retry; p != nil && p.MaxAttempts > 0 {
		return p.MaxAttempts
	}
	return r.c.cfg.RetryMaxAttempts
}

// exhausted reports whether call has used its attempt budget after
// attempts calls.
func (r *run) exhausted(c saga.Call, attempts int) bool {
	m := r.maxAttempts(c.Index)
	return m > 0 && attempts-r.base(c) >= m
}

// base is where call's attempt budget starts. First asked when the
// driver takes the call on (its first result, or its first start after a
// recovery, when parkings are not stored), it is the last whole multiple
// of max_attempts below the stored count: an operation parked before the
// restart (attempts a multiple of it) stays parked; one released by an
// operator keeps the rest of its budget.
func (r *run) base(c saga.Call) int {
	if b, ok := r.budgetBase[c]; ok {
		return b
	}
	b := 0
	if m, a := r.maxAttempts(c.Index), r.attempts(c); m > 0 && a > 0 {
		b = (a - 1) / m * m
	}
	setIn(&r.budgetBase, c, b)
	return b
}

// delay is the backoff before retrying call after attempts calls: the
// step's retry policy, or the coordinator's backoff.
func (r *run) delay(c saga.Call, attempts int) time.Duration {
	if p := r.spec.Steps[c.Index].Retry; p != nil {
		return p.Delay(r.c.cfg.RetryBase, r.c.cfg.RetryMax, attempts-r.base(c))
	}
	return backoff.Delay(r.c.cfg.RetryBase, r.c.cfg.RetryMax, attempts)
}

// exhaustedLine says why call waits for an operator.
func (r *run) exhaustedLine(c saga.Call, nonRetryable bool) string {
	what := opNoun(r.spec.Steps[c.Index].WireOp(c.Op))
	if nonRetryable {
		return fmt.Sprintf("%s of step %d got a non-retryable status: waiting for an operator (retry or abort --force)", what, c.Index)
	}
	return exhaustedWhy(what, c.Index, r.maxAttempts(c.Index))
}

func exhaustedWhy(what string, i, max int) string {
	if max == 1 {
		// One attempt: max_attempts 1, or a TCC confirm under
		// on_confirm_failure "operator" (seed F9).
		return fmt.Sprintf("%s of step %d failed and is tried once: waiting for an operator (retry or abort --force)", what, i)
	}
	return fmt.Sprintf("%s of step %d exhausted its %d attempts: waiting for an operator (retry or abort --force)", what, i, max)
}

func opNoun(op dtx.Op) string {
	if op == dtx.OpCompensate {
		return "compensation"
	}
	return string(op)
}

// park stops calling c until an operator releases it, with an alert.
func (r *run) park(c saga.Call, attempts int, lastErr string) {
	setIn(&r.parked, c, true)
	r.c.setParked(r.gid, r.exhaustedLine(c, !r.exhausted(c, attempts)))
	a := Alert{GID: r.gid, Branch: c.Index, Name: r.spec.Steps[c.Index].Name, Op: string(r.spec.Steps[c.Index].WireOp(c.Op)),
		Attempts: attempts, LastErr: lastErr, NeedsOperator: true}
	r.c.log.Warn("operation exhausted its retries; waiting for an operator", slog.String("gid", a.GID), slog.Int("branch", a.Branch),
		slog.String("op", a.Op), slog.Int("attempts", a.Attempts), slog.String("last_error", a.LastErr))
	r.c.cfg.Observer.Alert(a)
	if r.c.cfg.OnAlert != nil {
		r.c.cfg.OnAlert(a)
	}
}

// httpStatus is the HTTP status code behind err (0: none).
func httpStatus(err error) int {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus()
	}
	return 0
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (r *run) alert(i int, op dtx.Op, attempts int, lastErr string) {
	a := Alert{GID: r.gid, Branch: i, Name: r.spec.Steps[i].Name, Op: string(r.spec.Steps[i].WireOp(op)), Attempts: attempts, LastErr: lastErr,
		Misrouted: strings.Contains(lastErr, dtx.TypeMisrouted)}
	msg := "operation keeps failing; retrying"
	if a.Misrouted {
		msg = "call misrouted: answered by something that is not a dtx participant (wrong URL?)"
	}
	r.c.log.Warn(msg, slog.String("gid", a.GID), slog.Int("branch", a.Branch),
		slog.String("op", a.Op), slog.Int("attempts", a.Attempts), slog.String("last_error", a.LastErr))
	r.c.cfg.Observer.Alert(a)
	if r.c.cfg.OnAlert != nil {
		r.c.cfg.OnAlert(a)
	}
}

// checkDeadline switches a saga that ran out of time to compensation.
func (r *run) checkDeadline(now time.Time) error {
	if r.tx.Status != dtx.StatusRunning || r.tx.Deadline.IsZero() || now.Before(r.tx.Deadline) || saga.PastPivot(r.spec, r.br) {
		return nil
	}
	reason := fmt.Sprintf("timed out after %v", r.spec.Timeout.Std())
	if b := r.lastError(); b != "" {
		reason += ": last error: " + b
	}
	return r.persist(nil, nil, dtx.StatusCompensating, reason)
}

func (r *run) lastError() string {
	for _, b := range r.br {
		if !b.Action.Done() && b.LastError != "" {
			return b.LastError
		}
	}
	return ""
}

func (r *run) doAbort(req abortReq) error {
	if req.force != nil {
		return r.forceFail(req)
	}
	reason := req.reason
	if r.tx.Status != dtx.StatusRunning {
		if r.tx.Status.Terminal() {
			return dtx.ErrFinished
		}
		return nil
	}
	if saga.PastPivot(r.spec, r.br) {
		return ErrPastPivot
	}
	return r.persist(nil, nil, dtx.StatusCompensating, reason)
}

// persist writes the change fenced by our lease, retrying database errors
// with backoff: nothing proceeds until the state is durable.
func (r *run) persist(br []dtx.Branch, evs []dtx.Event, status dtx.Status, reason string) error {
	now := r.c.cfg.Now()
	if len(r.dirty) > 0 {
		for _, b := range br {
			delete(r.dirty, b.Index)
		}
		for i := range r.dirty {
			br = append(br, r.br[i])
		}
		evs = append(append([]dtx.Event(nil), r.unsent...), evs...)
	}
	u := dtx.Update{GID: r.gid, Owner: r.c.cfg.Owner, At: now, Branches: br, Events: evs, Status: status, Reason: reason}
	if status != "" {
		u.Events = append(u.Events, dtx.Event{At: now, Branch: -1, Outcome: string(status), Detail: reason})
		u.Release = status.Terminal()
	}
	for attempt := 1; ; attempt++ {
		err := r.c.store.Apply(r.c.hardCtx, u)
		if err == nil {
			break
		}
		if errors.Is(err, dtx.ErrLeaseLost) || errors.Is(err, dtx.ErrClosed) || r.c.hardCtx.Err() != nil {
			return err
		}
		if attempt == 1 || attempt%20 == 0 {
			r.c.log.Warn("cannot persist saga progress; retrying", slog.String("gid", r.gid), slog.Any("err", err))
		}
		select {
		case <-r.c.cfg.After(backoff.Delay(r.c.cfg.RetryBase, r.c.cfg.RetryMax, attempt)):
		case <-r.c.hardCtx.Done():
			return err
		}
	}
	clear(r.dirty)
	r.unsent = r.unsent[:0]
	if status == dtx.StatusCompensating {
		// Pending retries of actions are dropped: we compensate instead.
		for call := range r.retryAt {
			if call.Op == dtx.OpAction {
				delete(r.retryAt, call)
			}
		}
	}
	if status != "" {
		r.tx.Status = status
		if reason != "" {
			r.tx.Reason = reason
		}
		if status.Terminal() {
			r.c.cfg.Observer.TxFinished(r.tx.Pattern, status)
		}
		if u.Release {
			r.tx.LeaseOwner, r.tx.LeaseUntil = "", time.Time{}
		}
	}
	r.tx.UpdatedAt = now
	return nil
}

// setParked adds why to the lines of gid's operations that wait for an
// operator; an empty why clears them (an operator released them).
func (c *Coordinator) setParked(gid, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if why == "" {
		delete(c.parked, gid)
	} else if !slices.Contains(c.parked[gid], why) {
		c.parked[gid] = append(c.parked[gid], why)
	}
}
