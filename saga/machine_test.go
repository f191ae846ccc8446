package saga_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

func none(saga.Call) bool { return false }

func act(i int) saga.Call  { return saga.Call{Index: i, Op: dtx.OpAction} }
func comp(i int) saga.Call { return saga.Call{Index: i, Op: dtx.OpCompensate} }

func inflightSet(calls ...saga.Call) func(saga.Call) bool {
	return func(c saga.Call) bool { return slices.Contains(calls, c) }
}

func normalized(t *testing.T, s saga.Spec) *saga.Spec {
	t.Helper()
	require.NoError(t, s.Normalize())
	return &s
}

func TestInitialBranches(t *testing.T) {
	s := normalized(t, saga.Spec{Steps: []saga.Step{{Name: "x", Compensate: compURL}, st(), retriable()}})
	br := saga.InitialBranches("g", s)
	require.Len(t, br, 3)
	require.Equal(t, dtx.Branch{GID: "g", Index: 0, Name: "x", Action: dtx.BranchSkipped, Compensate: dtx.BranchPending}, br[0])
	require.Equal(t, dtx.BranchPending, br[1].Action)
	require.Equal(t, dtx.BranchPending, br[1].Compensate)
	require.Equal(t, dtx.BranchPending, br[2].Action)
	require.Equal(t, dtx.BranchSkipped, br[2].Compensate)
}

func TestNext_SequentialForward(t *testing.T) {
	s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st(), st()}})
	br := saga.InitialBranches("g", s)

	d := saga.Next(s, dtx.StatusRunning, br, none)
	require.Equal(t, saga.Decision{Calls: []saga.Call{act(0)}}, d, "first call is step 0's action")

	// While it is in flight nothing else is due, and it is not re-issued.
	d = saga.Next(s, dtx.StatusRunning, br, inflightSet(act(0)))
	require.Empty(t, d.Calls)
	require.Empty(t, d.Status)

	br[0].Action = dtx.BranchSucceeded
	d = saga.Next(s, dtx.StatusRunning, br, none)
	require.Equal(t, []saga.Call{act(1)}, d.Calls)

	br[1].Action = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{act(2)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)

	br[2].Action = dtx.BranchSucceeded
	d = saga.Next(s, dtx.StatusRunning, br, none)
	require.Empty(t, d.Calls)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
}

func TestNext_TerminalStatusesDoNothing(t *testing.T) {
	s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st()}})
	br := saga.InitialBranches("g", s)
	for _, status := range []dtx.Status{dtx.StatusSucceeded, dtx.StatusFailed, "bogus"} {
		require.Equal(t, saga.Decision{}, saga.Next(s, status, br, none), status)
	}
}

func TestNext_SkippedActionsAdvance(t *testing.T) {
	// A compensation-only first step does not hold up the saga.
	s := normalized(t, saga.Spec{Steps: []saga.Step{{Compensate: compURL}, st()}})
	br := saga.InitialBranches("g", s)
	require.Equal(t, []saga.Call{act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)

	// A saga with no action at all succeeds at once.
	s = normalized(t, saga.Spec{Steps: []saga.Step{{Compensate: compURL}, {Compensate: compURL}}})
	br = saga.InitialBranches("g", s)
	require.Equal(t, saga.Decision{Status: dtx.StatusSucceeded}, saga.Next(s, dtx.StatusRunning, br, none))
}

func TestNext_CompensatesInReverse(t *testing.T) {
	for k := range 4 {
		t.Run(fmt.Sprintf("FailAtStep%d", k), func(t *testing.T) {
			s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st(), st(), st()}})
			br := saga.InitialBranches("g", s)
			for i := range k {
				br[i].Action = dtx.BranchSucceeded
			}
			br[k].Action = dtx.BranchFailed
			for want := k; want >= 0; want-- {
				d := saga.Next(s, dtx.StatusCompensating, br, none)
				require.Empty(t, d.Status)
				require.Equal(t, []saga.Call{comp(want)}, d.Calls, "one compensation at a time, in reverse")
				// In flight: not re-issued, and the next one waits for it.
				d = saga.Next(s, dtx.StatusCompensating, br, inflightSet(comp(want)))
				require.Empty(t, d.Calls)
				require.Empty(t, d.Status)
				br[want].Compensate = dtx.BranchSucceeded
			}
			d := saga.Next(s, dtx.StatusCompensating, br, none)
			require.Equal(t, saga.Decision{Status: dtx.StatusFailed}, d)
			for i := k + 1; i < 4; i++ {
				require.Equal(t, dtx.BranchPending, br[i].Compensate, "step %d never ran", i)
			}
		})
	}
}

func TestNext_CompensationOnlySteps(t *testing.T) {
	t.Run("First", func(t *testing.T) {
		// The usual shape: step 0 only has a compensation ("mark the order
		// cancelled"). It is compensated last.
		s := normalized(t, saga.Spec{Steps: []saga.Step{{Compensate: compURL}, st(), st()}})
		br := saga.InitialBranches("g", s)
		require.Equal(t, []saga.Call{act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[1].Action = dtx.BranchSucceeded
		br[2].Action = dtx.BranchFailed
		for _, want := range []int{2, 1, 0} {
			require.Equal(t, []saga.Call{comp(want)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
			br[want].Compensate = dtx.BranchSucceeded
		}
		require.Equal(t, dtx.StatusFailed, saga.Next(s, dtx.StatusCompensating, br, none).Status)
	})
	t.Run("MiddleKeepsSequence", func(t *testing.T) {
		// A step without an action must not let step 2 overtake step 0.
		s := normalized(t, saga.Spec{Steps: []saga.Step{st(), {Compensate: compURL}, st()}})
		br := saga.InitialBranches("g", s)
		require.Equal(t, []saga.Call{act(0)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		require.Empty(t, saga.Next(s, dtx.StatusRunning, br, inflightSet(act(0))).Calls)
		br[0].Action = dtx.BranchSucceeded
		require.Equal(t, []saga.Call{act(2)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[2].Action = dtx.BranchSucceeded
		require.Equal(t, dtx.StatusSucceeded, saga.Next(s, dtx.StatusRunning, br, none).Status)
	})
	t.Run("MiddleNotReachedIsNotCompensated", func(t *testing.T) {
		s := normalized(t, saga.Spec{Steps: []saga.Step{st(), {Compensate: compURL}, st()}})
		br := saga.InitialBranches("g", s)
		br[0].Action = dtx.BranchFailed
		require.False(t, saga.NeedsCompensation(s, br, 1))
		require.False(t, saga.NeedsCompensation(s, br, 2))
		require.Equal(t, []saga.Call{comp(0)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
		br[0].Compensate = dtx.BranchSucceeded
		require.Equal(t, dtx.StatusFailed, saga.Next(s, dtx.StatusCompensating, br, none).Status)
	})
	t.Run("MiddleReachedIsCompensatedInOrder", func(t *testing.T) {
		s := normalized(t, saga.Spec{Steps: []saga.Step{st(), {Compensate: compURL}, st()}})
		br := saga.InitialBranches("g", s)
		br[0].Action = dtx.BranchSucceeded
		br[2].Action = dtx.BranchFailed
		for _, want := range []int{2, 1, 0} {
			require.Equal(t, []saga.Call{comp(want)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
			br[want].Compensate = dtx.BranchSucceeded
		}
	})
	t.Run("ParallelChainOfSkippedSteps", func(t *testing.T) {
		// 0 → 1 (no action) → 2 (no action) → 3: step 3 waits for step 0.
		s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{
			st(), {Compensate: compURL, After: []int{0}}, {Compensate: compURL, After: []int{1}}, st(2),
		}})
		br := saga.InitialBranches("g", s)
		require.Equal(t, []saga.Call{act(0)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[0].Action = dtx.BranchSucceeded
		require.Equal(t, []saga.Call{act(3)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
	})
}

func TestNext_SkippedCompensation(t *testing.T) {
	// A compensation recorded as skipped needs no call.
	s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st()}})
	br := saga.InitialBranches("g", s)
	br[0].Action = dtx.BranchSucceeded
	br[1].Action = dtx.BranchFailed
	br[1].Compensate = dtx.BranchSkipped
	require.False(t, saga.NeedsCompensation(s, br, 1))
	require.Equal(t, []saga.Call{comp(0)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
	br[0].Compensate = dtx.BranchSucceeded
	require.Equal(t, dtx.StatusFailed, saga.Next(s, dtx.StatusCompensating, br, none).Status)
}

func TestNext_RetriableStepsWaitForPivot(t *testing.T) {
	t.Run("Sequential", func(t *testing.T) {
		s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st(), retriable(), retriable()}})
		br := saga.InitialBranches("g", s)
		require.False(t, saga.PastPivot(s, br))
		br[0].Action = dtx.BranchSucceeded
		require.Equal(t, []saga.Call{act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[1].Action = dtx.BranchSucceeded
		require.True(t, saga.PastPivot(s, br))
		require.Equal(t, []saga.Call{act(2)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
	})
	t.Run("Parallel", func(t *testing.T) {
		// Step 2 (retriable) has no dependencies but must wait until both
		// compensatable steps have succeeded.
		s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(0), retriable()}})
		br := saga.InitialBranches("g", s)
		require.Equal(t, []saga.Call{act(0)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[0].Action = dtx.BranchSucceeded
		require.Equal(t, []saga.Call{act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		require.Empty(t, saga.Next(s, dtx.StatusRunning, br, inflightSet(act(1))).Calls)
		br[1].Action = dtx.BranchSucceeded
		require.Equal(t, []saga.Call{act(2)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
		br[2].Action = dtx.BranchSucceeded
		require.Equal(t, dtx.StatusSucceeded, saga.Next(s, dtx.StatusRunning, br, none).Status)
	})
	t.Run("OnlyRetriable", func(t *testing.T) {
		s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{retriable(), retriable()}})
		br := saga.InitialBranches("g", s)
		require.True(t, saga.PastPivot(s, br))
		require.Equal(t, []saga.Call{act(0), act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
	})
}

func TestNext_ParallelForward(t *testing.T) {
	s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(), st(0, 1), st(2)}})
	br := saga.InitialBranches("g", s)
	require.Equal(t, []saga.Call{act(0), act(1)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
	// In-flight calls are not re-issued.
	require.Equal(t, []saga.Call{act(1)}, saga.Next(s, dtx.StatusRunning, br, inflightSet(act(0))).Calls)
	require.Empty(t, saga.Next(s, dtx.StatusRunning, br, inflightSet(act(0), act(1))).Calls)
	br[0].Action = dtx.BranchSucceeded
	require.Empty(t, saga.Next(s, dtx.StatusRunning, br, inflightSet(act(1))).Calls, "step 2 waits for both")
	br[1].Action = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{act(2)}, saga.Next(s, dtx.StatusRunning, br, none).Calls)
}

func TestNext_CompensationWaitsForInflightAction(t *testing.T) {
	// Steps 0 and 1 run in parallel; 1 fails while 0 is still in flight.
	s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{st(), st()}})
	br := saga.InitialBranches("g", s)
	br[1].Action = dtx.BranchFailed
	d := saga.Next(s, dtx.StatusCompensating, br, inflightSet(act(0)))
	require.Empty(t, d.Calls, "compensation waits for in-flight actions")
	require.Empty(t, d.Status, "not finished while an action may still land")
	// The action's outcome arrives (whatever it is, the step may have run).
	br[0].Action = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{comp(0), comp(1)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
}

func TestNext_LateActionKeepsReverseOrder(t *testing.T) {
	// 2 depends on 0 and 1. 0 has succeeded, 1 is in flight when a third,
	// independent step 3 fails. If 1 succeeds, step 2 "may have run" and must
	// be compensated before 0: nothing is compensated until 1 has landed.
	s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(), st(0, 1), st()}})
	br := saga.InitialBranches("g", s)
	br[0].Action = dtx.BranchSucceeded
	br[3].Action = dtx.BranchFailed
	require.Empty(t, saga.Next(s, dtx.StatusCompensating, br, inflightSet(act(1))).Calls)
	br[1].Action = dtx.BranchSucceeded
	require.True(t, saga.NeedsCompensation(s, br, 2))
	require.Equal(t, []saga.Call{comp(2), comp(3)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
}

func TestNext_CompensatesStepsThatMayHaveRun(t *testing.T) {
	// Step 1's action outcome is unknown (still pending) when the saga is
	// aborted: it may have run, so it is compensated; step 2 never started.
	s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st(), st()}})
	br := saga.InitialBranches("g", s)
	br[0].Action = dtx.BranchSucceeded
	require.True(t, saga.NeedsCompensation(s, br, 0))
	require.True(t, saga.NeedsCompensation(s, br, 1))
	require.False(t, saga.NeedsCompensation(s, br, 2))
	require.Equal(t, []saga.Call{comp(1)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
}

func TestNext_ParallelCompensationOrder(t *testing.T) {
	// 0 → {1, 2} → 3; 3 failed: compensate 3, then 1 and 2 together, then 0.
	s := normalized(t, saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(0), st(0), st(1, 2)}})
	br := saga.InitialBranches("g", s)
	for i := range 3 {
		br[i].Action = dtx.BranchSucceeded
	}
	br[3].Action = dtx.BranchFailed
	require.Equal(t, []saga.Call{comp(3)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
	br[3].Compensate = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{comp(1), comp(2)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
	br[1].Compensate = dtx.BranchSucceeded
	require.Empty(t, saga.Next(s, dtx.StatusCompensating, br, inflightSet(comp(2))).Calls)
	br[2].Compensate = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{comp(0)}, saga.Next(s, dtx.StatusCompensating, br, none).Calls)
	br[0].Compensate = dtx.BranchSucceeded
	require.Equal(t, dtx.StatusFailed, saga.Next(s, dtx.StatusCompensating, br, none).Status)
}

// ---- property test ----

// randomSpec returns a valid random saga: sequential or a random DAG, with
// some compensation-only steps and a retriable tail.
func randomSpec(r *rand.Rand) saga.Spec {
	n := 1 + r.IntN(7)
	s := saga.Spec{Parallel: r.IntN(3) > 0, Steps: make([]saga.Step, n)}
	if !s.Parallel {
		pivot := r.IntN(n + 1) // steps >= pivot are retriable
		for i := range s.Steps {
			switch {
			case i >= pivot:
				s.Steps[i] = retriable()
			case r.IntN(5) == 0:
				s.Steps[i] = saga.Step{Compensate: compURL}
			default:
				s.Steps[i] = st()
			}
		}
		return s
	}
	// A DAG over a random permutation of the indexes, so that dependencies
	// point both ways in index order.
	perm := r.Perm(n) // perm[k] is the index of the k-th step in topological order
	for k := range n {
		var step saga.Step
		switch r.IntN(6) {
		case 0:
			step = retriable()
		case 1:
			step = saga.Step{Compensate: compURL}
		default:
			step = st()
		}
		for j := range k {
			if r.IntN(3) == 0 {
				step.After = append(step.After, perm[j])
			}
		}
		s.Steps[perm[k]] = step
	}
	// A step depending on a retriable step must be retriable itself.
	for k := range n {
		i := perm[k]
		for _, d := range s.Steps[i].After {
			if s.Steps[d].Compensate == "" {
				s.Steps[i].Compensate = ""
				if s.Steps[i].Action == "" {
					s.Steps[i].Action = actURL
				}
			}
		}
	}
	return s
}

type simEvent struct {
	call  saga.Call
	start bool // issue (true) or completion (false)
}

// simulate drives a saga the way coordinator/run.go does, with concurrent
// calls completing in random order with random outcomes. It returns the
// final status and branches and the history of issued and completed calls.
func simulate(t *testing.T, r *rand.Rand, s *saga.Spec) (dtx.Status, []dtx.Branch, []simEvent) {
	br := saga.InitialBranches("g", s)
	status := dtx.StatusRunning
	inflight := map[saga.Call]bool{}
	var hist []simEvent
	var order []saga.Call // inflight calls, in issue order, for deterministic picks
	failP := r.Float64() * 0.4
	unknownP := r.Float64() * 0.3
	abortP := 0.0
	if r.IntN(4) == 0 {
		abortP = 0.1
	}
	for iter := 0; ; iter++ {
		require.Less(t, iter, 10000, "saga does not terminate")
		d := saga.Next(s, status, br, func(c saga.Call) bool { return inflight[c] })
		if d.Status != "" {
			require.True(t, d.Status.Terminal(), "Next returned non-terminal status %q", d.Status)
			require.Empty(t, inflight, "terminal status with calls in flight")
			require.Empty(t, d.Calls)
			return d.Status, br, hist
		}
		for _, c := range d.Calls {
			require.False(t, inflight[c], "in-flight call %v re-issued", c)
			inflight[c] = true
			order = append(order, c)
			hist = append(hist, simEvent{call: c, start: true})
			checkIssue(t, s, status, br, inflight, c)
		}
		if status == dtx.StatusRunning && abortP > 0 && r.Float64() < abortP && !saga.PastPivot(s, br) {
			// Abort or deadline: only allowed before the pivot.
			status = dtx.StatusCompensating
			continue
		}
		require.NotEmpty(t, order, "saga is stuck: nothing in flight, nothing due (status %s, branches %+v)", status, br)
		k := r.IntN(len(order))
		c := order[k]
		order = slices.Delete(order, k, k+1)
		delete(inflight, c)
		hist = append(hist, simEvent{call: c})

		class := dtx.Success
		if c.Op == dtx.OpAction {
			switch x := r.Float64(); {
			case x < failP:
				class = dtx.Failure
			case x < failP+unknownP:
				class = dtx.Unknown
			}
		}
		// Steps past the pivot never give up: a failure is retried.
		if class == dtx.Failure && s.Steps[c.Index].Compensate == "" {
			class = dtx.Unknown
		}
		switch class {
		case dtx.Success:
			if c.Op == dtx.OpAction {
				br[c.Index].Action = dtx.BranchSucceeded
			} else {
				br[c.Index].Compensate = dtx.BranchSucceeded
			}
		case dtx.Failure:
			br[c.Index].Action = dtx.BranchFailed
			if status == dtx.StatusRunning {
				status = dtx.StatusCompensating
			}
		}
	}
}

// checkIssue asserts the invariants that hold when call c is issued.
func checkIssue(t *testing.T, s *saga.Spec, status dtx.Status, br []dtx.Branch, inflight map[saga.Call]bool, c saga.Call) {
	t.Helper()
	i := c.Index
	switch c.Op {
	case dtx.OpAction:
		require.Equal(t, dtx.StatusRunning, status, "action %d issued while %s", i, status)
		require.Equal(t, dtx.BranchPending, br[i].Action)
		for _, d := range ancestors(s, i) {
			require.Equal(t, dtx.BranchSucceeded, br[d].Action, "action %d issued before step %d it waits for succeeded", i, d)
		}
		if s.Steps[i].Compensate == "" {
			require.True(t, saga.PastPivot(s, br), "retriable step %d started before the pivot", i)
		}
	case dtx.OpCompensate:
		require.Equal(t, dtx.StatusCompensating, status, "compensation %d issued while %s", i, status)
		require.Equal(t, dtx.BranchPending, br[i].Compensate)
		require.NotEmpty(t, s.Steps[i].Compensate)
		require.False(t, inflight[act(i)], "compensation %d issued while its action is in flight", i)
	}
}

func TestNext_Property(t *testing.T) {
	const runs = 6000
	seed := uint64(20240601)
	r := rand.New(rand.NewPCG(seed, seed>>1))
	outcomes := map[dtx.Status]int{}
	for run := range runs {
		spec := randomSpec(r)
		require.NoError(t, spec.Normalize(), "generated spec %d is invalid: %+v", run, spec)
		status, br, hist := simulate(t, r, &spec)
		outcomes[status]++
		desc := describe(&spec, hist)
		called := map[saga.Call]bool{}
		for _, e := range hist {
			if e.start {
				called[e.call] = true
			}
		}
		switch status {
		case dtx.StatusSucceeded:
			for i, b := range br {
				require.True(t, b.Action.Done(), "run %d: succeeded with step %d not done\n%s", run, i, desc)
				require.False(t, called[comp(i)], "run %d: succeeded saga compensated step %d\n%s", run, i, desc)
			}
		case dtx.StatusFailed:
			for i, b := range br {
				ran := b.Action == dtx.BranchSucceeded || b.Action == dtx.BranchFailed || called[act(i)]
				if ran {
					require.True(t, b.Compensate.Done(), "run %d: step %d ran but was not compensated\n%s", run, i, desc)
					require.NotEmpty(t, spec.Steps[i].Compensate, "run %d: retriable step %d ran in a failed saga\n%s", run, i, desc)
					require.True(t, called[comp(i)], "run %d: step %d ran, compensation never called\n%s", run, i, desc)
				}
				deps := true
				for _, d := range ancestors(&spec, i) {
					deps = deps && br[d].Action == dtx.BranchSucceeded
				}
				if !deps {
					require.False(t, called[act(i)], "run %d: step %d called though its dependencies never all succeeded\n%s", run, i, desc)
				}
			}
			checkReverseOrder(t, run, &spec, hist, desc)
		default:
			t.Fatalf("run %d: unexpected final status %q", run, status)
		}
	}
	t.Logf("outcomes over %d random sagas: %v", runs, outcomes)
	require.Positive(t, outcomes[dtx.StatusSucceeded])
	require.Positive(t, outcomes[dtx.StatusFailed])
}

// checkReverseOrder asserts that no compensation of a step was issued
// before the compensations of the steps depending on it had completed.
func checkReverseOrder(t *testing.T, run int, s *saga.Spec, hist []simEvent, desc string) {
	t.Helper()
	issued := map[int]int{} // step -> position of compensation issue
	done := map[int]int{}   // step -> position of compensation completion
	for pos, e := range hist {
		if e.call.Op != dtx.OpCompensate {
			continue
		}
		if e.start {
			issued[e.call.Index] = pos
		} else {
			done[e.call.Index] = pos
		}
	}
	for j := range s.Steps {
		if _, ok := done[j]; !ok {
			continue
		}
		for _, i := range s.Deps(j) {
			if at, ok := issued[i]; ok {
				require.Less(t, done[j], at, "run %d: step %d compensated before its dependant %d\n%s", run, i, j, desc)
			}
		}
	}
}

// ancestors returns the steps with an action that step i waits for: its
// dependencies, looking through steps that have no action.
func ancestors(s *saga.Spec, i int) []int {
	var out []int
	seen := map[int]bool{}
	var walk func(j int)
	walk = func(j int) {
		for _, d := range s.Deps(j) {
			if seen[d] {
				continue
			}
			seen[d] = true
			if s.Steps[d].Action == "" {
				walk(d)
			} else {
				out = append(out, d)
			}
		}
	}
	walk(i)
	return out
}

func describe(s *saga.Spec, hist []simEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "parallel=%v\n", s.Parallel)
	for i, st := range s.Steps {
		fmt.Fprintf(&b, "  step %d: action=%v compensate=%v after=%v\n", i, st.Action != "", st.Compensate != "", st.After)
	}
	for _, e := range hist {
		verb := "done "
		if e.start {
			verb = "issue"
		}
		fmt.Fprintf(&b, "  %s %s %d\n", verb, e.call.Op, e.call.Index)
	}
	return b.String()
}

// TestNextWith_Recovered: a saga resumed from the store may have run steps
// the store shows pending (successes are written lazily), so it compensates
// every step that may have run, in reverse order — but never a step behind
// a definite failure.
func TestNextWith_Recovered(t *testing.T) {
	s := normalized(t, saga.Spec{Steps: []saga.Step{st(), st(), st()}})
	br := saga.InitialBranches("g", s)

	exact := saga.NextWith(s, dtx.StatusCompensating, br, none, false)
	require.Equal(t, []saga.Call{comp(0)}, exact.Calls, "exact knowledge: only step 0 may have run")

	rec := saga.NextWith(s, dtx.StatusCompensating, br, none, true)
	require.Equal(t, []saga.Call{comp(2)}, rec.Calls, "recovered: all may have run; the last goes first")
	br[2].Compensate = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{comp(1)}, saga.NextWith(s, dtx.StatusCompensating, br, none, true).Calls)
	br[1].Compensate = dtx.BranchSucceeded
	require.Equal(t, []saga.Call{comp(0)}, saga.NextWith(s, dtx.StatusCompensating, br, none, true).Calls)
	br[0].Compensate = dtx.BranchSucceeded
	require.Equal(t, dtx.StatusFailed, saga.NextWith(s, dtx.StatusCompensating, br, none, true).Status)

	// A recorded definite failure bounds what may have run.
	br = saga.InitialBranches("g", s)
	br[1].Action = dtx.BranchFailed
	require.Equal(t, []bool{true, true, false}, saga.MayHaveRun(s, br))
	require.Equal(t, []saga.Call{comp(1)}, saga.NextWith(s, dtx.StatusCompensating, br, none, true).Calls)
}
