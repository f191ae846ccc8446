package tcc

import (
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// Builder writes a TCC Spec in Go instead of JSON:
//
//	spec, err := tcc.New("order-42").
//		Participant("inventory", inv+"/try", inv+"/confirm", inv+"/cancel", saga.Payload(req)).
//		Participant("payment", pay+"/try", pay+"/confirm", pay+"/cancel", saga.Payload(req)).
//		Build()
//
// The options are saga.StepOption (saga.Payload, saga.Retry); Build checks
// the result the way the coordinator will. Start with New.
type Builder struct {
	spec Spec
	errs []error
}

// New starts a TCC transaction with the given gid ("" lets the coordinator
// make one).
func New(gid string) *Builder { return &Builder{spec: Spec{GID: gid}} }

// Participant appends a participant with its try, confirm and cancel URLs
// (see Participant for which may be empty).
func (b *Builder) Participant(name, try, confirm, cancel string, opts ...saga.StepOption) *Builder {
	var st saga.Step
	for _, o := range opts {
		if err := o(&st); err != nil {
			b.errs = append(b.errs, fmt.Errorf("%w: participant %q: %v", dtx.ErrInvalid, name, err))
		}
	}
	b.spec.Participants = append(b.spec.Participants,
		Participant{Name: name, Try: try, Confirm: confirm, Cancel: cancel, Payload: st.Payload, Retry: st.Retry})
	return b
}

// Sequential runs the tries one after another (see Spec.Sequential).
func (b *Builder) Sequential() *Builder { b.spec.Sequential = true; return b }

// Timeout bounds the try phase (see Spec.Timeout).
func (b *Builder) Timeout(d time.Duration) *Builder { b.spec.Timeout = dtx.Duration(d); return b }

// BranchTimeout bounds one branch call (see Spec.BranchTimeout).
func (b *Builder) BranchTimeout(d time.Duration) *Builder {
	b.spec.BranchTimeout = dtx.Duration(d)
	return b
}

// Build returns the spec, or every problem found in it (each matching
// dtx.ErrInvalid).
func (b *Builder) Build() (Spec, error) {
	if len(b.errs) > 0 {
		return Spec{}, errors.Join(b.errs...)
	}
	out := b.spec
	out.Participants = append([]Participant(nil), b.spec.Participants...)
	sg, err := out.Saga()
	if err != nil {
		return Spec{}, err
	}
	if err := sg.Normalize(); err != nil {
		return Spec{}, err
	}
	return out, nil
}
