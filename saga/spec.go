package saga

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/traceparent"
)

// Limits on a saga definition.
const (
	MaxSteps       = 64
	MaxGIDLength   = 128
	MaxPayloadSize = 64 << 10
)

// Spec is the definition of a saga as submitted to the coordinator.
type Spec struct {
	// GID is the global transaction id. The coordinator generates one when
	// empty. Resubmitting the same gid with the same content is idempotent;
	// with different content it is rejected (dtx.ErrConflict).
	GID   string `json:"gid,omitempty"`
	Steps []Step `json:"steps"`
	// Parallel makes steps run as a DAG: a step starts once every step in its
	// After list has succeeded. When false, each step implicitly runs after
	// the previous one.
	Parallel bool `json:"parallel,omitempty"`
	// Timeout bounds the forward phase: a saga still running after Timeout is
	// compensated (unless it is past its pivot, see Step.Compensate). Zero:
	// DefaultTimeout.
	Timeout dtx.Duration `json:"timeout,omitempty"`
	// BranchTimeout bounds one branch call; a call that exceeds it has an
	// unknown outcome and is retried. Zero: DefaultBranchTimeout.
	BranchTimeout dtx.Duration `json:"branch_timeout,omitempty"`
	// TraceParent is the W3C traceparent of the request that submitted the
	// saga (the coordinator's API fills it from the request header). Every
	// branch call carries its trace id with a new span id, also after
	// recovery. It is not part of the saga's identity: a resubmission with
	// another traceparent is the same saga (see Digest).
	TraceParent string `json:"traceparent,omitempty"`
}

// Step is one saga step: an action and the compensation that undoes it.
type Step struct {
	// Name is shown in logs and the dashboard (default "step-<index>").
	Name string `json:"name,omitempty"`
	// Action is the URL called (POST, JSON Payload) to perform the step: an
	// absolute URL of a scheme the coordinator's transport serves, such as
	// http(s)://..., or broker://<topic> (a-z, 0-9, '-') for a command
	// published to that broker topic, answered by a reply message (see
	// package transport/brokertransport). Empty: the step has no forward
	// work (a compensation-only step, such as "mark the order cancelled").
	Action string `json:"action,omitempty"`
	// Compensate is the URL called to undo the step. Empty: the step cannot be
	// undone, which makes it a retriable step: it starts only once every
	// compensatable step has succeeded (the pivot), and from then on the saga
	// only moves forward.
	Compensate string `json:"compensate,omitempty"`
	// Payload is sent as the request body of both calls.
	Payload json.RawMessage `json:"payload,omitempty"`
	// After lists the indexes of steps this one depends on (Parallel only).
	After []int `json:"after,omitempty"`
	// ActionOp and CompensateOp name the operations in the Dtx-Op header
	// (default "action" and "compensate"); TCC uses try, confirm, cancel.
	ActionOp     dtx.Op `json:"action_op,omitempty"`
	CompensateOp dtx.Op `json:"compensate_op,omitempty"`
	// Branch, when set, is the branch index participants receive (header
	// Dtx-Branch) for this step's calls instead of the step's own index.
	// TCC sets a confirm's to its try's index, so that the three operations
	// of a participant share one branch id: an XA confirm commits the branch
	// its try prepared. Steps may share a branch index only with distinct
	// operation names.
	Branch *int `json:"branch,omitempty"`
	// Retry, when set, is how this step's action and compensation are
	// retried (see RetryPolicy); unset fields take the coordinator's
	// defaults.
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// BranchIndex is the branch index participants receive for step i.
func (st *Step) BranchIndex(i int) int {
	if st.Branch != nil {
		return *st.Branch
	}
	return i
}

// WireOp is the name participants receive for op of this step.
func (st *Step) WireOp(op dtx.Op) dtx.Op {
	switch {
	case op == dtx.OpAction && st.ActionOp != "":
		return st.ActionOp
	case op == dtx.OpCompensate && st.CompensateOp != "":
		return st.CompensateOp
	}
	return op
}

// Normalize fills defaults and validates s, returning all problems at once
// (each wrapped around dtx.ErrInvalid).
func (s *Spec) Normalize() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{dtx.ErrInvalid}, args...)...))
	}
	if s.GID != "" {
		if msg := checkGID(s.GID); msg != "" {
			bad("%s", msg)
		}
	}
	if len(s.Steps) == 0 {
		bad("a saga needs at least one step")
	}
	if len(s.Steps) > MaxSteps {
		bad("a saga has at most %d steps, got %d", MaxSteps, len(s.Steps))
	}
	for _, d := range []struct {
		field string
		v     dtx.Duration
	}{{"timeout", s.Timeout}, {"branch_timeout", s.BranchTimeout}} {
		if d.v < 0 {
			bad("%s: %v is negative", d.field, d.v.Std())
		} else if d.v != 0 && d.v.Std() < MinTimeout {
			bad("%s: %v is below the minimum of %v", d.field, d.v.Std(), MinTimeout)
		}
	}
	if s.TraceParent != "" {
		if tp, ok := traceparent.Parse(s.TraceParent); ok {
			s.TraceParent = tp.String()
		} else {
			bad("traceparent %s is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)", Quote(s.TraceParent))
		}
	}
	for i := range s.Steps {
		st := &s.Steps[i]
		if msg := checkName(st.Name); msg != "" {
			bad("steps[%d].%s", i, msg)
			st.Name = "" // the messages below name the step by its index
		}
		if st.Name == "" {
			st.Name = fmt.Sprintf("step-%d", i)
		}
		if st.Action == "" && st.Compensate == "" {
			bad("step %d (%s): needs an action or a compensate URL", i, st.Name)
		}
		for _, u := range []string{st.Action, st.Compensate} {
			if u == "" {
				continue
			}
			if err := checkURL(u); err != nil {
				bad("step %d (%s): %v", i, st.Name, err)
			}
		}
		for _, op := range []dtx.Op{st.ActionOp, st.CompensateOp} {
			if op != "" && !opRE.MatchString(string(op)) {
				bad("step %d (%s): operation name %s must be 1-32 lowercase letters", i, st.Name, Quote(string(op)))
			}
		}
		if st.Retry != nil {
			for _, msg := range st.Retry.check(fmt.Sprintf("steps[%d].retry", i)) {
				bad("%s", msg)
			}
		}
		if len(st.Payload) > MaxPayloadSize {
			bad("step %d (%s): payload is %d bytes; the limit is %d", i, st.Name, len(st.Payload), MaxPayloadSize)
		}
		if len(st.Payload) > 0 && !json.Valid(st.Payload) {
			bad("step %d (%s): payload is not valid JSON", i, st.Name)
		}
		if !s.Parallel {
			if i > 0 && st.Compensate != "" && s.Steps[i-1].Compensate == "" {
				bad("step %d (%s): a compensatable step cannot follow a step without compensation", i, st.Name)
			}
			if len(st.After) > 0 {
				bad("step %d (%s): after is only allowed with parallel", i, st.Name)
			}
			continue
		}
		if len(st.After) > MaxSteps {
			bad("steps[%d].after has %d entries; the limit is %d", i, len(st.After), MaxSteps)
			continue
		}
		for _, d := range st.After {
			if d < 0 || d >= len(s.Steps) || d == i {
				bad("step %d (%s): after refers to invalid step %d", i, st.Name, d)
			}
		}
	}
	type branchOp struct {
		branch int
		op     dtx.Op
	}
	seen := map[branchOp]int{}
	for i := range s.Steps {
		st := &s.Steps[i]
		b := st.BranchIndex(i)
		if b < 0 || b >= len(s.Steps) {
			bad("step %d (%s): branch %d out of range", i, st.Name, b)
			continue
		}
		for _, op := range []dtx.Op{dtx.OpAction, dtx.OpCompensate} {
			if (op == dtx.OpAction && st.Action == "") || (op == dtx.OpCompensate && st.Compensate == "") {
				continue
			}
			key := branchOp{b, st.WireOp(op)}
			if j, dup := seen[key]; dup {
				bad("step %d (%s): branch %d operation %q is also step %d's", i, st.Name, b, key.op, j)
			}
			seen[key] = i
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if s.Parallel {
		if err := s.checkGraph(); err != nil {
			return err
		}
	}
	if s.Timeout == 0 {
		s.Timeout = dtx.Duration(DefaultTimeout)
	}
	if s.BranchTimeout == 0 {
		s.BranchTimeout = dtx.Duration(DefaultBranchTimeout)
	}
	return nil
}

var opRE = regexp.MustCompile(`^[a-z]{1,32}$`)

// checkURL accepts absolute URLs (with a scheme) of at most MaxURLLength
// bytes, with a port, if any, in 1-65535; http and https URLs need a host
// too. Which schemes can be called, and each scheme's own rule (such as the
// topic of broker://<topic>), the coordinator checks against its transport
// (dtx.URLChecker).
func checkURL(raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("URL is %d bytes long; the limit is %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %s", Quote(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("URL %s: port %s is out of range 1-65535", Quote(raw), Quote(p))
		}
	}
	if u.Scheme == "" {
		return fmt.Errorf("URL %s is not absolute: it needs a scheme such as http", Quote(raw))
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return fmt.Errorf("URL %s has no host", Quote(raw))
	}
	return nil
}

// checkGraph rejects cycles and compensatable steps that depend on
// retriable (non-compensatable) ones: retriable steps run after the pivot.
func (s *Spec) checkGraph() error {
	state := make([]int, len(s.Steps)) // 0 new, 1 visiting, 2 done
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return fmt.Errorf("%w: steps form a cycle through step %d", dtx.ErrInvalid, i)
		case 2:
			return nil
		}
		state[i] = 1
		for _, d := range s.Steps[i].After {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[i] = 2
		return nil
	}
	for i := range s.Steps {
		if err := visit(i); err != nil {
			return err
		}
		for _, d := range s.Steps[i].After {
			if s.Steps[i].Compensate != "" && s.Steps[d].Compensate == "" {
				return fmt.Errorf("%w: compensatable step %d depends on step %d, which has no compensation", dtx.ErrInvalid, i, d)
			}
		}
	}
	return nil
}

// Deps returns the indexes of the steps step i waits for.
func (s *Spec) Deps(i int) []int {
	if s.Parallel {
		return s.Steps[i].After
	}
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

// Digest identifies the content of a normalized spec (gid included, trace
// context excluded).
func (s *Spec) Digest() string {
	c := *s
	c.TraceParent = ""
	b, _ := json.Marshal(&c)
	return DigestEncoded(b)
}

// DigestEncoded is Digest of a spec given as its JSON encoding
// (json.Marshal of a Spec whose TraceParent is empty): a caller that has
// encoded the spec already need not encode it again.
func DigestEncoded(encoded []byte) string {
	h := sha256.Sum256(encoded)
	return hex.EncodeToString(h[:12])
}

// Default limits applied by Normalize.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultBranchTimeout = 5 * time.Second
)
