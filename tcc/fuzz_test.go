package tcc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// FuzzSaga decodes a TCC spec (the body of POST /v1/tcc and /v1/xa) and
// builds its saga. Saga is deterministic; a refusal wraps dtx.ErrInvalid;
// the saga has one step per operation with the protocol's shape (tries with
// their cancels, confirms on their try's branch after every try, chained
// tries when sequential); and the structure it builds is never what
// Normalize refuses.
func FuzzSaga(f *testing.F) {
	for _, s := range []string{
		`{"gid":"o-1","participants":[{"name":"inv","try":"http://i/try","confirm":"http://i/confirm","cancel":"http://i/cancel","payload":{"sku":"a"}},{"try":"http://p/try","cancel":"http://p/cancel"}]}`,
		`{"participants":[{"cancel":"http://o/cancel"},{"try":"http://i/t","confirm":"http://i/c","cancel":"http://i/x"},{"confirm":"http://o/done"}],"sequential":true,"timeout":"3s"}`,
		`{"participants":[{"try":"http://i/t"}]}`,
		`{"participants":[{}]}`,
		`{"participants":[]}`,
		`{"gid":"x","participants":[{"try":"broker://inv","cancel":"broker://inv","confirm":"broker://inv"}],"branch_timeout":"10ms"}`,
		`{"participants":[{"try":"nope","cancel":"http://a/c"}],"traceparent":"00-zz"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var s tcc.Spec
		if json.Unmarshal(in, &s) != nil {
			return
		}
		sg, err := s.Saga()
		sg2, err2 := s.Saga()
		a, _ := json.Marshal(sg)
		b, _ := json.Marshal(sg2)
		if (err == nil) != (err2 == nil) || !bytes.Equal(a, b) {
			t.Fatalf("Saga is not deterministic: %s (%v), then %s (%v)", a, err, b, err2)
		}
		if err != nil {
			if !errors.Is(err, dtx.ErrInvalid) {
				t.Fatalf("Saga: %v, not a dtx.ErrInvalid", err)
			}
			return
		}
		if !sg.Parallel || sg.GID != s.GID || sg.Timeout != s.Timeout || sg.BranchTimeout != s.BranchTimeout || sg.TraceParent != s.TraceParent {
			t.Fatalf("the saga does not carry the spec's settings: %s", a)
		}
		var tries []int
		want := 0
		for i, p := range s.Participants {
			if p.Try != "" && p.Cancel == "" {
				t.Fatalf("participant %d has a try without a cancel, yet Saga accepted it", i)
			}
			for _, u := range []string{p.Try, p.Cancel, p.Confirm} {
				if u != "" {
					want++
				}
			}
			if p.Try != "" {
				want-- // the try and its cancel are one step
				at := slices.IndexFunc(sg.Steps, func(st saga.Step) bool {
					return st.Action == p.Try && st.Compensate == p.Cancel && st.ActionOp == dtx.OpTry && st.CompensateOp == dtx.OpCancel && string(st.Payload) == string(p.Payload)
				})
				if at < 0 {
					t.Fatalf("participant %d: no try step with its cancel in %s", i, a)
				}
				tries = append(tries, at)
			}
		}
		if len(sg.Steps) != want {
			t.Fatalf("%d steps for %d operations: %s", len(sg.Steps), want, a)
		}
		for i, st := range sg.Steps {
			if st.ActionOp != dtx.OpConfirm {
				continue
			}
			for _, tr := range tries {
				if !slices.Contains(st.After, tr) {
					t.Fatalf("confirm step %d does not wait for try step %d: %s", i, tr, a)
				}
			}
			if st.Branch != nil && sg.Steps[*st.Branch].ActionOp != dtx.OpTry {
				t.Fatalf("confirm step %d is on branch %d, which is not a try: %s", i, *st.Branch, a)
			}
		}
		if s.Sequential {
			for k := 1; k < len(tries); k++ {
				if !slices.Contains(sg.Steps[tries[k]].After, tries[k-1]) {
					t.Fatalf("sequential: try step %d does not wait for try step %d: %s", tries[k], tries[k-1], a)
				}
			}
		}
		// The structure alone (URLs, names, payloads and settings
		// replaced by valid ones) always normalizes, up to the step limit.
		shape := sg
		shape.GID, shape.Timeout, shape.BranchTimeout, shape.TraceParent = "", 0, 0, ""
		shape.Steps = slices.Clone(sg.Steps)
		for i := range shape.Steps {
			st := &shape.Steps[i]
			st.Name, st.Payload = "", nil
			if st.Action != "" {
				st.Action = "http://svc.local/a"
			}
			if st.Compensate != "" {
				st.Compensate = "http://svc.local/c"
			}
		}
		if err := shape.Normalize(); err != nil && len(shape.Steps) <= saga.MaxSteps {
			t.Fatalf("Saga built a structure Normalize refuses: %v\n%s", err, a)
		}
	})
}
