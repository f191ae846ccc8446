package chaos

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Kind is a kind of injected fault.
type Kind string

// Faults injected by the chaos run itself (process faults and duplicate
// requests) and by the shop's fault injector (fail, delay, lose).
const (
	// CoordinatorKill: SIGKILL one coordinator process, restart it at once
	// (as a new lease owner). With several coordinators one is picked at
	// random and the others keep going.
	CoordinatorKill Kind = "coordinator_kill"
	// ShopKill: SIGKILL the shop process (order, inventory, payment) and
	// restart it at once.
	ShopKill Kind = "shop_kill"
	// ParticipantDown: SIGKILL the shop process and restart it only after
	// a few seconds, during which every call to it fails.
	ParticipantDown Kind = "participant_down"
	// BrokerRestart: stop the embedded NATS server and reopen it on the
	// same files and port a moment later; clients reconnect.
	BrokerRestart Kind = "broker_restart"
	// DuplicateRequest: an order request sent twice at once with the same
	// idempotency key; both must get the same order.
	DuplicateRequest Kind = "duplicate_request"
	// Fail: a branch call or event delivery refused before it runs.
	Fail Kind = "fail"
	// Delay: a branch call or delivery answered late (past the branch
	// timeout, sometimes).
	Delay Kind = "delay"
	// Lose: a branch call or delivery processed and committed, then its
	// response or acknowledgement lost, so it is retried or redelivered
	// (a duplicate delivery).
	Lose Kind = "lose"
)

// Patterns accepted by Run.
const (
	PatternSaga         = "saga"
	PatternTCC          = "tcc"
	PatternChoreography = "choreography"
	PatternMixed        = "mixed"
)

// Patterns lists the accepted patterns.
var Patterns = []string{PatternSaga, PatternTCC, PatternChoreography, PatternMixed}

// mixedRotation is the order patterns take in a mixed run: each shop
// incarnation places its new orders with the next one.
var mixedRotation = []string{PatternSaga, PatternTCC, PatternChoreography}

// ProcessKinds are the process faults planned for a pattern.
func ProcessKinds(pattern string) []Kind {
	switch pattern {
	case PatternChoreography:
		return []Kind{ShopKill, ParticipantDown, BrokerRestart}
	case PatternMixed:
		return []Kind{CoordinatorKill, ShopKill, ParticipantDown, BrokerRestart}
	default:
		return []Kind{CoordinatorKill, ShopKill, ParticipantDown}
	}
}

// PlannedKinds are all the fault kinds a run of pattern must inject at
// least once to pass.
func PlannedKinds(pattern string) []Kind {
	return append(ProcessKinds(pattern), DuplicateRequest, Fail, Delay, Lose)
}

// Slot is one planned process fault, at an offset from the start.
type Slot struct {
	At   time.Duration
	Kind Kind
}

// faultEvery is the mean spacing of process faults.
const faultEvery = 4 * time.Second

// Schedule plans the process faults of a run of duration d: every kind of
// the pattern once, in a random order, first, then random kinds, spread
// over the run with jitter. The last slot leaves time for a participant to
// come back before the run ends.
func Schedule(rng *rand.Rand, pattern string, d time.Duration) []Slot {
	return ScheduleKinds(rng, ProcessKinds(pattern), d)
}

// ScheduleKinds is Schedule for a given list of kinds (a pattern's process
// faults and its topology's infrastructure faults). Its first len(kinds)
// slots hold each kind once, in random order; a run that falls behind its
// plan still injects those before it stops the load.
func ScheduleKinds(rng *rand.Rand, kinds []Kind, d time.Duration) []Slot {
	start, end := 1500*time.Millisecond, d-4*time.Second
	if end <= start {
		end = start + time.Second
	}
	window := end - start
	n := max(len(kinds), int(window/faultEvery))
	order := slices.Clone(kinds)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for len(order) < n {
		order = append(order, kinds[rng.IntN(len(kinds))])
	}
	step := window / time.Duration(n)
	out := make([]Slot, n)
	for i, k := range order {
		jitter := time.Duration(rng.Int64N(int64(step/2)+1)) - step/4
		out[i] = Slot{At: start + step*time.Duration(i) + step/2 + jitter, Kind: k}
	}
	return out
}
