package saga

import "github.com/dtxhq/dtx"

// Call is one branch operation the machine wants performed.
type Call struct {
	Index int
	Op    dtx.Op
}

// Decision is the machine's answer for the current state.
type Decision struct {
	// Calls are the operations to start now (excluding those in flight).
	Calls []Call
	// Status is the transaction's new terminal status, or "" if unchanged.
	Status dtx.Status
}

// InitialBranches returns the branch records for a new saga: operations with
// nothing to call (no URL) start out skipped.
func InitialBranches(gid string, s *Spec) []dtx.Branch {
	out := make([]dtx.Branch, len(s.Steps))
	for i, st := range s.Steps {
		b := dtx.Branch{GID: gid, Index: i, Name: st.Name, Action: dtx.BranchPending, Compensate: dtx.BranchPending}
		if st.Action == "" {
			b.Action = dtx.BranchSkipped
		}
		if st.Compensate == "" {
			b.Compensate = dtx.BranchSkipped
		}
		out[i] = b
	}
	return out
}

// depsDone reports whether every dependency of step i has a completed action,
// i.e. step i has been (or may have been) started. A step without an action
// completes only once its own dependencies have: it must not let the steps
// after it overtake the steps before it.
func depsDone(s *Spec, br []dtx.Branch, i int) bool {
	memo := make([]int8, len(s.Steps)) // 0 unknown, 1 completed, -1 not
	var completed func(j int) bool
	completed = func(j int) bool {
		if memo[j] == 0 {
			ok := br[j].Action == dtx.BranchSucceeded
			if br[j].Action == dtx.BranchSkipped {
				ok = true
				for _, d := range s.Deps(j) {
					ok = ok && completed(d)
				}
			}
			memo[j] = -1
			if ok {
				memo[j] = 1
			}
		}
		return memo[j] > 0
	}
	for _, d := range s.Deps(i) {
		if !completed(d) {
			return false
		}
	}
	return true
}

// PastPivot reports whether every compensatable step's action has completed:
// from then on the saga only moves forward and can no longer be compensated.
func PastPivot(s *Spec, br []dtx.Branch) bool {
	for i, st := range s.Steps {
		if st.Compensate != "" && !br[i].Action.Done() {
			return false
		}
	}
	return true
}

// NeedsCompensation reports whether step i must be compensated before a
// compensating saga can finish: its compensation is not done and the step
// ran or may have run.
func NeedsCompensation(s *Spec, br []dtx.Branch, i int) bool {
	if br[i].Compensate.Done() {
		return false
	}
	switch br[i].Action {
	case dtx.BranchSucceeded, dtx.BranchFailed:
		return true
	}
	return depsDone(s, br, i)
}

// Next returns what to do for a saga in the given status. inflight reports
// whether an operation is currently being called; the machine neither
// re-issues it nor starts compensations while any action is still in flight.
func Next(s *Spec, status dtx.Status, br []dtx.Branch, inflight func(Call) bool) Decision {
	return NextWith(s, status, br, inflight, false)
}

// NextWith is Next for a driver that may not know every success: a
// coordinator records a step's success lazily (with its next write), so
// after it resumes a saga from the store (recovered = true) a pending step
// may in fact have run. Such a saga, when compensating, compensates every
// step that may have run by that weaker rule (see MayHaveRun); a step that
// never ran gets a null compensation, which participants must accept.
func NextWith(s *Spec, status dtx.Status, br []dtx.Branch, inflight func(Call) bool, recovered bool) Decision {
	switch status {
	case dtx.StatusRunning:
		return forward(s, br, inflight)
	case dtx.StatusCompensating:
		return backward(s, br, inflight, recovered)
	}
	return Decision{}
}

// MayHaveRun reports, for every step, whether it may have run when
// successes are known only up to the last durable write: no step on any
// path to it failed definitively (a step starts only after its
// dependencies succeeded).
func MayHaveRun(s *Spec, br []dtx.Branch) []bool {
	const unknown, no, yes = 0, 1, 2
	memo := make([]int, len(s.Steps))
	var may func(i int) bool
	may = func(i int) bool {
		if memo[i] != unknown {
			return memo[i] == yes
		}
		ok := true
		for _, d := range s.Deps(i) {
			if br[d].Action == dtx.BranchFailed || !may(d) {
				ok = false
				break
			}
		}
		memo[i] = no
		if ok {
			memo[i] = yes
		}
		return ok
	}
	out := make([]bool, len(s.Steps))
	for i := range out {
		out[i] = may(i)
	}
	return out
}

func forward(s *Spec, br []dtx.Branch, inflight func(Call) bool) Decision {
	var d Decision
	allDone := true
	pivot := PastPivot(s, br)
	for i, st := range s.Steps {
		if br[i].Action.Done() {
			continue
		}
		allDone = false
		c := Call{Index: i, Op: dtx.OpAction}
		if br[i].Action != dtx.BranchPending || inflight(c) || !depsDone(s, br, i) {
			continue
		}
		if st.Compensate == "" && !pivot {
			continue
		}
		d.Calls = append(d.Calls, c)
	}
	if allDone {
		d.Status = dtx.StatusSucceeded
	}
	return d
}

// backward schedules compensations in reverse dependency order: step i is
// compensated once no step that depends on it still needs compensation.
func backward(s *Spec, br []dtx.Branch, inflight func(Call) bool, recovered bool) Decision {
	var d Decision
	need := make([]bool, len(s.Steps))
	var may []bool
	if recovered {
		may = MayHaveRun(s, br)
	}
	any := false
	for i := range s.Steps {
		if recovered {
			need[i] = !br[i].Compensate.Done() && may[i]
		} else {
			need[i] = NeedsCompensation(s, br, i)
		}
		any = any || need[i]
	}
	busy := false
	for i := range s.Steps {
		if inflight(Call{Index: i, Op: dtx.OpAction}) {
			busy = true
		}
	}
	if !any {
		if !busy {
			d.Status = dtx.StatusFailed
		}
		return d
	}
	if busy {
		// An action still in flight may yet make a step "may have run" (its
		// last dependency succeeding), and that step must be compensated
		// before its dependencies: wait until the actions have landed.
		return d
	}
	for i := range s.Steps {
		if !need[i] {
			continue
		}
		c := Call{Index: i, Op: dtx.OpCompensate}
		if inflight(c) || inflight(Call{Index: i, Op: dtx.OpAction}) {
			continue
		}
		blocked := false
		for j := range s.Steps {
			if j == i || !need[j] {
				continue
			}
			for _, dep := range s.Deps(j) {
				if dep == i {
					blocked = true
				}
			}
		}
		if !blocked {
			d.Calls = append(d.Calls, c)
		}
	}
	return d
}
