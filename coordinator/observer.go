package coordinator

import (
	"time"

	"github.com/dtxhq/dtx"
)

// Observer receives the coordinator's events, for metrics (package metrics
// implements it with Prometheus). Methods are called from the drivers'
// goroutines, on the hot path: they must be quick, must not block and
// must not call back into the coordinator.
type Observer interface {
	// TxStarted: a transaction was recorded (not for an idempotent
	// resubmission).
	TxStarted(p dtx.Pattern)
	// TxFinished: a transaction reached its final status, durably.
	TxFinished(p dtx.Pattern, s dtx.Status)
	// BranchCall: a branch call ended. role is dtx.OpAction or
	// dtx.OpCompensate; wire is the operation name participants saw (try,
	// confirm, cancel for TCC and XA); class is the outcome as classified
	// by the transport.
	BranchCall(role, wire dtx.Op, class dtx.Class, took time.Duration)
	// BranchRetry: an operation was scheduled to be called again (unknown
	// outcome, or a failed operation that may not be given up).
	BranchRetry(role, wire dtx.Op)
	// Alert: an operation that may not be given up keeps failing (see
	// Config.AlertAfter).
	Alert(a Alert)
	// Claimed: a recovery pass claimed n transactions (n > 0) whose lease
	// had expired or been released.
	Claimed(n int)
	// RenewFailed: renewing this coordinator's leases failed.
	RenewFailed()
}

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) TxStarted(dtx.Pattern)                                {}
func (nopObserver) TxFinished(dtx.Pattern, dtx.Status)                   {}
func (nopObserver) BranchCall(_, _ dtx.Op, _ dtx.Class, _ time.Duration) {}
func (nopObserver) BranchRetry(_, _ dtx.Op)                              {}
func (nopObserver) Alert(Alert)                                          {}
func (nopObserver) Claimed(int)                                          {}
func (nopObserver) RenewFailed()                                         {}
