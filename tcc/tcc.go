// Package tcc is try/confirm/cancel on the saga engine.
//
// A TCC transaction reserves resources at every participant (try), then
// either confirms every reservation or cancels every reservation that was
// (or may have been) made. That is a saga whose actions are the tries, whose
// compensations are the cancels, and whose confirms are retriable steps after
// the pivot:
//
//   - the tries run in parallel; a definite "no" or a timeout cancels every
//     try that ran or may have run, in reverse dependency order, each cancel
//     retried until it succeeds;
//   - once every try has succeeded (the pivot) the transaction can only move
//     forward: the confirms run and are retried until they succeed, with an
//     alert when they keep failing. A confirm never runs after a cancel.
//
// Participants see Dtx-Op try, confirm or cancel. The three operations of a
// participant share a branch index (Dtx-Branch), so the participant barrier
// (package participant) makes a cancel without a try a no-op and a try
// after its cancel do nothing, and an XA confirm (package participant/xa)
// commits the very branch its try prepared.
package tcc

import (
	"encoding/json"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// Participant is one resource owner in a TCC transaction. Every URL is
// optional, but Try needs Cancel: a participant may only have Cancel (work
// to undo on failure, e.g. mark an order cancelled) or only Confirm (work to
// do on success, e.g. mark an order completed).
type Participant struct {
	Name    string          `json:"name,omitempty"`
	Try     string          `json:"try,omitempty"`
	Confirm string          `json:"confirm,omitempty"`
	Cancel  string          `json:"cancel,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Retry is how this participant's try, confirm and cancel are retried
	// (see saga.RetryPolicy): it is copied to each of its saga steps.
	Retry *saga.RetryPolicy `json:"retry,omitempty"`
}

// Spec is a TCC transaction as submitted to the coordinator.
type Spec struct {
	GID          string        `json:"gid,omitempty"`
	Participants []Participant `json:"participants"`
	// Timeout bounds the try phase (a transaction still trying then is
	// cancelled); BranchTimeout bounds one call. Zero: the saga defaults.
	Timeout       dtx.Duration `json:"timeout,omitempty"`
	BranchTimeout dtx.Duration `json:"branch_timeout,omitempty"`
	// Sequential runs the tries one after another, in participant order,
	// instead of in parallel. XA transactions need it: a prepared branch
	// holds its locks until it is confirmed or cancelled, and branches that
	// lock in one global order cannot deadlock across databases.
	Sequential bool `json:"sequential,omitempty"`
	// SequentialConfirms runs the confirms one after another, in
	// participant order, instead of in parallel: a participant is confirmed
	// only once the one before it has been (the seeds' TCC: product, then
	// point).
	SequentialConfirms bool `json:"sequential_confirms,omitempty"`
	// OnConfirmFailure says what a failed confirm does (seed rule F9):
	// ConfirmRetry ("retry", the default) retries it under the
	// participant's retry policy until it succeeds; ConfirmOperator
	// ("operator") calls each confirm once and parks a failed one for an
	// operator: the transaction stays confirming, an alert fires, the
	// attention view lists it, and only an operator's retry (or a forced
	// abort) drives it on. A successful try promised that its confirm will
	// succeed, so retrying is the default; the operator policy trades that
	// availability for a human's review of every failed confirm.
	OnConfirmFailure string `json:"on_confirm_failure,omitempty"`
	// TraceParent is the W3C traceparent the branch calls join (see
	// saga.Spec.TraceParent); the coordinator's API fills it from the
	// request header.
	TraceParent string `json:"traceparent,omitempty"`
}

// The policies of Spec.OnConfirmFailure.
const (
	ConfirmRetry    = "retry"
	ConfirmOperator = "operator"
)

// confirmRetry is the retry policy of a confirm step of a participant
// whose policy is p: p itself, or, under ConfirmOperator, p with one
// attempt (a confirm that exhausts its attempts waits for an operator).
func (s *Spec) confirmRetry(p *saga.RetryPolicy) *saga.RetryPolicy {
	if s.OnConfirmFailure != ConfirmOperator {
		return p
	}
	var q saga.RetryPolicy
	if p != nil {
		q = *p
	}
	q.MaxAttempts = 1
	return &q
}

// Saga returns the saga that drives s:
//
//   - one step per cancel-only participant, first: it has nothing to do
//     forward, and, since no try depends on it, its cancel runs as soon as
//     the transaction decides to cancel, beside the other cancels (an order
//     is marked cancelled at once, while its reservations are still being
//     released: the decision is written first, and a participant whose
//     cancel keeps failing does not keep the order pending);
//   - one step per try (with its cancel), in parallel, or one after
//     another if s.Sequential;
//   - one retriable step per confirm of a participant that tried, after
//     every try; then the confirm-only participants, after those confirms
//     (an order is marked completed once its reservations are confirmed).
func (s *Spec) Saga() (saga.Spec, error) {
	out := saga.Spec{GID: s.GID, Parallel: true, Timeout: s.Timeout, BranchTimeout: s.BranchTimeout, TraceParent: s.TraceParent}
	if len(s.Participants) == 0 {
		return out, fmt.Errorf("%w: a TCC transaction needs at least one participant", dtx.ErrInvalid)
	}
	if err := s.checkLimits(); err != nil {
		return out, err
	}
	switch s.OnConfirmFailure {
	case "", ConfirmRetry, ConfirmOperator:
	default:
		return out, fmt.Errorf("%w: on_confirm_failure: %s is not %q or %q", dtx.ErrInvalid, saga.Quote(s.OnConfirmFailure), ConfirmRetry, ConfirmOperator)
	}
	names := make([]string, len(s.Participants))
	for i, p := range s.Participants {
		names[i] = p.Name
		if names[i] == "" {
			names[i] = fmt.Sprintf("participant-%d", i)
		}
		switch {
		case p.Try != "" && p.Cancel == "":
			return out, fmt.Errorf("%w: participant %d (%s): a try needs a cancel", dtx.ErrInvalid, i, names[i])
		case p.Try == "" && p.Confirm == "" && p.Cancel == "":
			return out, fmt.Errorf("%w: participant %d (%s): needs try+cancel, cancel or confirm", dtx.ErrInvalid, i, names[i])
		}
	}
	add := func(st saga.Step) int {
		out.Steps = append(out.Steps, st)
		return len(out.Steps) - 1
	}
	var cancelOnly, tries, confirms []int
	tryOf := map[int]int{} // participant -> its try step
	for i, p := range s.Participants {
		if p.Try == "" && p.Cancel != "" {
			cancelOnly = append(cancelOnly, add(saga.Step{Name: names[i] + ".cancel", Compensate: p.Cancel,
				Payload: p.Payload, CompensateOp: dtx.OpCancel, Retry: p.Retry}))
		}
	}
	for i, p := range s.Participants {
		if p.Try != "" {
			var after []int
			if s.Sequential && len(tries) > 0 {
				after = append(after, tries[len(tries)-1])
			}
			tryOf[i] = add(saga.Step{Name: names[i] + ".try", Action: p.Try, Compensate: p.Cancel,
				Payload: p.Payload, ActionOp: dtx.OpTry, CompensateOp: dtx.OpCancel, After: after, Retry: p.Retry})
			tries = append(tries, tryOf[i])
		}
	}
	pivot := append(clone(cancelOnly), tries...)
	for i, p := range s.Participants {
		if p.Try != "" && p.Confirm != "" {
			// The confirm goes to the try's branch: one branch id per
			// participant, as in the TCC and XA protocols.
			branch := tryOf[i]
			after := clone(pivot)
			if s.SequentialConfirms && len(confirms) > 0 {
				after = append(after, confirms[len(confirms)-1])
			}
			confirms = append(confirms, add(saga.Step{Name: names[i] + ".confirm", Action: p.Confirm,
				Payload: p.Payload, ActionOp: dtx.OpConfirm, After: after, Branch: &branch, Retry: s.confirmRetry(p.Retry)}))
		}
	}
	for i, p := range s.Participants {
		if p.Try == "" && p.Confirm != "" {
			add(saga.Step{Name: names[i] + ".confirm", Action: p.Confirm, Payload: p.Payload,
				ActionOp: dtx.OpConfirm, After: append(clone(pivot), confirms...), Retry: s.confirmRetry(p.Retry)})
		}
	}
	return out, nil
}

func clone(s []int) []int { return append([]int(nil), s...) }
