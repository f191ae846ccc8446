package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
)

// Builder writes a Spec in Go instead of JSON:
//
//	spec, err := saga.New("order-42").
//		Step("reserve", inventory+"/reserve", inventory+"/release", saga.Payload(req)).
//		Step("charge", payment+"/charge", payment+"/refund", saga.Payload(req)).
//		Build()
//
// Build checks the result the way the coordinator will, so a mistake shows
// before anything is sent. The zero Builder is not usable: start with New.
type Builder struct {
	spec Spec
	errs []error
}

// StepOption sets an optional field of one step (see Payload, Retry).
type StepOption func(*Step) error

// Payload sets the JSON body of the step's calls: v is encoded with
// encoding/json (a json.RawMessage or []byte is taken as it is, and must
// be valid JSON).
func Payload(v any) StepOption {
	return func(st *Step) error {
		var raw []byte
		switch p := v.(type) {
		case json.RawMessage:
			raw = p
		case []byte:
			raw = p
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("payload: %w", err)
			}
			raw = b
		}
		if !json.Valid(raw) {
			return errors.New("payload is not valid JSON")
		}
		st.Payload = json.RawMessage(raw)
		return nil
	}
}

// Retry sets the step's retry policy (see RetryPolicy).
func Retry(p RetryPolicy) StepOption {
	return func(st *Step) error { st.Retry = &p; return nil }
}

// New starts a saga with the given gid ("" lets the coordinator make one).
func New(gid string) *Builder { return &Builder{spec: Spec{GID: gid}} }

// Step appends a step: action is called to do it, compensate to undo it
// (an empty compensate makes it a retriable step after the pivot; an empty
// action a compensation-only step). Both are absolute URLs.
func (b *Builder) Step(name, action, compensate string, opts ...StepOption) *Builder {
	st := Step{Name: name, Action: action, Compensate: compensate}
	for _, o := range opts {
		if err := o(&st); err != nil {
			b.errs = append(b.errs, fmt.Errorf("%w: step %q: %v", dtx.ErrInvalid, name, err))
		}
	}
	b.spec.Steps = append(b.spec.Steps, st)
	return b
}

// Timeout bounds the saga's forward phase (see Spec.Timeout).
func (b *Builder) Timeout(d time.Duration) *Builder { b.spec.Timeout = dtx.Duration(d); return b }

// BranchTimeout bounds one branch call (see Spec.BranchTimeout).
func (b *Builder) BranchTimeout(d time.Duration) *Builder {
	b.spec.BranchTimeout = dtx.Duration(d)
	return b
}

// Build returns the spec, or every problem found in it (each matching
// dtx.ErrInvalid, naming the field as the coordinator's 400 would).
func (b *Builder) Build() (Spec, error) {
	out := b.spec
	out.Steps = append([]Step(nil), b.spec.Steps...)
	if len(b.errs) > 0 {
		return Spec{}, errors.Join(b.errs...)
	}
	if err := out.Check(); err != nil {
		return Spec{}, err
	}
	return out, nil
}

// Check validates s as Normalize does, without changing s.
func (s *Spec) Check() error {
	cp := *s
	cp.Steps = make([]Step, len(s.Steps))
	for i, st := range s.Steps {
		st.After = append([]int(nil), st.After...)
		cp.Steps[i] = st
	}
	return cp.Normalize()
}
