package saga_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/traceparent"
)

// fuzzSpecSeeds are saga specs as JSON, valid and not, for the fuzz targets
// of this package.
var fuzzSpecSeeds = []string{
	`{"gid":"order-1","steps":[{"action":"http://svc.local/act","compensate":"http://svc.local/undo","payload":{"n":1}}]}`,
	`{"steps":[{"action":"http://a/x","compensate":"http://a/y"},{"action":"broker://payments"}],"timeout":"2s","branch_timeout":"300ms"}`,
	`{"gid":"g","parallel":true,"steps":[{"action":"http://a/1","compensate":"http://a/2"},{"action":"http://b/1","compensate":"http://b/2","after":[0]},{"action":"http://c/1","after":[0,1]}]}`,
	`{"parallel":true,"steps":[{"action":"http://a/1","compensate":"http://a/2","after":[1]},{"action":"http://b/1","compensate":"http://b/2","after":[0]}]}`,
	`{"steps":[{"compensate":"http://a/cancel","compensate_op":"cancel"},{"action":"http://a/t","compensate":"http://a/c","action_op":"try","compensate_op":"cancel","branch":0}]}`,
	`{"gid":"a/b","steps":[{"action":"relative/path"}],"timeout":"-1s"}`,
	`{"gid":"t","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","steps":[{"action":"https://x.example/a"}]}`,
	`{"gid":"..","steps":[{"action":"http://a/x","payload":"not json"}]}`,
	`{"steps":[]}`,
	`{"gid":"x","steps":[{"action":"http://a/x","action_op":"Nope"},{"action":"http://a/y","branch":5}]}`,
}

var fuzzOpRE = regexp.MustCompile(`^[a-z]{1,32}$`)

// FuzzNormalize decodes a saga spec and normalizes it. An accepted spec
// satisfies the documented rules; Normalize is idempotent; the spec's JSON
// reads back to a spec of the same content (same digest); a refusal wraps
// dtx.ErrInvalid.
func FuzzNormalize(f *testing.F) {
	for _, s := range fuzzSpecSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var s saga.Spec
		if json.Unmarshal(in, &s) != nil {
			return
		}
		if err := s.Normalize(); err != nil {
			if !errors.Is(err, dtx.ErrInvalid) {
				t.Fatalf("Normalize(%s): %v, not a dtx.ErrInvalid", in, err)
			}
			return
		}
		checkNormalized(t, &s)

		first, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("Marshal of a normalized spec: %v", err)
		}
		var again saga.Spec
		if err := json.Unmarshal(first, &again); err != nil {
			t.Fatalf("a normalized spec's JSON does not read back: %v\n%s", err, first)
		}
		if err := again.Normalize(); err != nil {
			t.Fatalf("Normalize is not idempotent: the normalized spec %s is refused: %v", first, err)
		}
		second, _ := json.Marshal(&again)
		if !bytes.Equal(first, second) {
			t.Fatalf("Normalize is not idempotent:\n%s\nnormalizes to\n%s", first, second)
		}
		if s.Digest() != again.Digest() {
			t.Fatalf("the digest changed over a JSON round trip: %s, %s", s.Digest(), again.Digest())
		}
	})
}

// checkNormalized asserts the rules a spec accepted by Normalize follows.
func checkNormalized(t *testing.T, s *saga.Spec) {
	t.Helper()
	if len(s.GID) > saga.MaxGIDLength {
		t.Fatalf("accepted gid of %d bytes", len(s.GID))
	}
	if n := len(s.Steps); n < 1 || n > saga.MaxSteps {
		t.Fatalf("accepted %d steps", n)
	}
	if s.Timeout <= 0 || s.BranchTimeout <= 0 {
		t.Fatalf("timeouts after Normalize: %v, %v; want both positive", s.Timeout.Std(), s.BranchTimeout.Std())
	}
	if s.TraceParent != "" {
		tp, ok := traceparent.Parse(s.TraceParent)
		if !ok || tp.String() != s.TraceParent {
			t.Fatalf("accepted traceparent %q is not in canonical form", s.TraceParent)
		}
	}
	type branchOp struct {
		b  int
		op dtx.Op
	}
	seen := map[branchOp]bool{}
	for i := range s.Steps {
		st := &s.Steps[i]
		if st.Name == "" {
			t.Fatalf("step %d has no name after Normalize", i)
		}
		if st.Action == "" && st.Compensate == "" {
			t.Fatalf("step %d has neither action nor compensate", i)
		}
		for _, raw := range []string{st.Action, st.Compensate} {
			if raw == "" {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil || u.Scheme == "" {
				t.Fatalf("step %d: accepted URL %q is not absolute (%v)", i, raw, err)
			}
		}
		for _, op := range []dtx.Op{st.ActionOp, st.CompensateOp} {
			if op != "" && !fuzzOpRE.MatchString(string(op)) {
				t.Fatalf("step %d: accepted operation name %q", i, op)
			}
		}
		if len(st.Payload) > saga.MaxPayloadSize || (len(st.Payload) > 0 && !json.Valid(st.Payload)) {
			t.Fatalf("step %d: accepted payload %q", i, st.Payload)
		}
		b := st.BranchIndex(i)
		if b < 0 || b >= len(s.Steps) {
			t.Fatalf("step %d: branch %d out of range", i, b)
		}
		for _, op := range []dtx.Op{dtx.OpAction, dtx.OpCompensate} {
			if (op == dtx.OpAction && st.Action == "") || (op == dtx.OpCompensate && st.Compensate == "") {
				continue
			}
			k := branchOp{b, st.WireOp(op)}
			if seen[k] {
				t.Fatalf("step %d: branch %d operation %q used twice", i, b, k.op)
			}
			seen[k] = true
		}
		for _, d := range s.Deps(i) {
			if d < 0 || d >= len(s.Steps) || d == i {
				t.Fatalf("step %d depends on step %d", i, d)
			}
			if st.Compensate != "" && s.Steps[d].Compensate == "" {
				t.Fatalf("compensatable step %d runs after step %d, which has no compensation", i, d)
			}
		}
	}
	// The dependencies form no cycle: every step is reached in a
	// topological order.
	done := make([]bool, len(s.Steps))
	for left := len(s.Steps); left > 0; {
		progress := false
		for i := range s.Steps {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range s.Deps(i) {
				ready = ready && done[d]
			}
			if ready {
				done[i], progress = true, true
				left--
			}
		}
		if !progress {
			t.Fatalf("accepted steps that depend on each other in a cycle: %+v", s.Steps)
		}
	}
	if br := saga.InitialBranches(s.GID, s); len(br) != len(s.Steps) {
		t.Fatalf("InitialBranches: %d branches for %d steps", len(br), len(s.Steps))
	}
}
