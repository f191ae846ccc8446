package dtx

// Names of the OpenTelemetry span attributes dtx records: the
// coordinator's transaction and branch-call spans, the participant SDK's
// server spans and the outbox's and inbox's message spans (see the
// "Tracing" section of the README for the span tree of one saga).
const (
	// AttrGID is the global transaction id.
	AttrGID = "dtx.gid"
	// AttrPattern is the transaction's pattern (saga, tcc, xa).
	AttrPattern = "dtx.pattern"
	// AttrStatus is the status a transaction's run left it in.
	AttrStatus = "dtx.status"
	// AttrRecovered is true on the span of a run resumed from the store
	// (after a restart or a lease takeover).
	AttrRecovered = "dtx.recovered"
	// AttrBranch is the branch index, from 0.
	AttrBranch = "dtx.branch"
	// AttrOp is the wire operation: action, compensate, try, confirm, ...
	AttrOp = "dtx.op"
	// AttrAttempt numbers the calls of one operation from 1.
	AttrAttempt = "dtx.attempt"
	// AttrOutcome is the outcome class of a branch call: success, failure
	// or unknown (see Class).
	AttrOutcome = "dtx.outcome"
	// AttrRetry is true on a branch call whose operation the coordinator
	// will call again (its outcome is unknown and its retry policy allows
	// another attempt).
	AttrRetry = "dtx.retry"
)
