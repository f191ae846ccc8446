package dtx

import (
	"encoding/json"
	"strings"
	"time"
)

// Pattern names the protocol a global transaction follows.
type Pattern string

// Patterns known to the coordinator.
const (
	PatternSaga Pattern = "saga"
	// PatternTCC is try/confirm/cancel, driven by the saga engine: tries are
	// compensatable steps (cancel undoes try), confirms are retriable steps
	// after the pivot (see package tcc).
	PatternTCC Pattern = "tcc"
	// PatternXA is two-phase commit over the participants' own databases
	// (XA on MySQL/MariaDB, PREPARE TRANSACTION on PostgreSQL), driven like
	// TCC: a try prepares a branch, a confirm commits it, a cancel rolls it
	// back. Tries run one after another, in participant order, so that
	// branches take their locks in one global order (see package
	// participant/xa).
	PatternXA Pattern = "xa"
)

// Title is the pattern's name in prose: "saga", "TCC", "XA" (others as
// they are spelled).
func (p Pattern) Title() string {
	switch p {
	case PatternTCC, PatternXA:
		return strings.ToUpper(string(p))
	}
	return string(p)
}

// Plural names many transactions of the pattern in prose, for counts and
// rates: "sagas", "TCC transactions", "XA transactions".
func (p Pattern) Plural() string {
	if p == PatternSaga {
		return "sagas"
	}
	return p.Title() + " transactions"
}

// SagaEngine reports whether the saga engine drives transactions of
// pattern p (saga, tcc and xa).
func (p Pattern) SagaEngine() bool {
	return p == PatternSaga || p == PatternTCC || p == PatternXA
}

// Status is the state of a global transaction.
type Status string

// Global transaction states. Running and Compensating are in flight;
// Succeeded and Failed are terminal. A Failed saga has compensated every step
// that ran or may have run.
const (
	StatusRunning      Status = "running"
	StatusCompensating Status = "compensating"
	StatusSucceeded    Status = "succeeded"
	StatusFailed       Status = "failed"
)

// Terminal reports whether s is a final state.
func (s Status) Terminal() bool { return s == StatusSucceeded || s == StatusFailed }

// Valid reports whether s is one of the known states.
func (s Status) Valid() bool {
	switch s {
	case StatusRunning, StatusCompensating, StatusSucceeded, StatusFailed:
		return true
	}
	return false
}

// Op names one operation on a branch.
type Op string

// Branch operations.
const (
	OpAction     Op = "action"
	OpCompensate Op = "compensate"
	// TCC names for the same roles, as participants see them in Dtx-Op.
	OpTry     Op = "try"
	OpConfirm Op = "confirm"
	OpCancel  Op = "cancel"
)

// BranchStatus is the durable state of one operation of one branch.
type BranchStatus string

// Branch operation states. Pending covers "not started", "in flight" and
// "outcome unknown": the store only ever records outcomes that are certain.
const (
	BranchPending   BranchStatus = "pending"
	BranchSucceeded BranchStatus = "succeeded"
	BranchFailed    BranchStatus = "failed"
	// BranchSkipped marks an operation that has nothing to do: a step with no
	// action URL, or the compensation of a step that never ran.
	BranchSkipped BranchStatus = "skipped"
)

// Done reports whether the operation needs no further call.
func (s BranchStatus) Done() bool { return s == BranchSucceeded || s == BranchSkipped }

// Tx is the durable record of one global transaction.
type Tx struct {
	GID     string  `json:"gid"`
	Pattern Pattern `json:"pattern"`
	Status  Status  `json:"status"`
	// Reason says why a transaction failed (or is compensating).
	Reason string `json:"reason,omitempty"`
	// Spec is the pattern-specific definition (for sagas, saga.Spec as JSON).
	Spec json.RawMessage `json:"spec"`
	// Digest identifies the submitted content, so a resubmission of the same
	// gid can be told apart from a conflicting one.
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Deadline is when the transaction times out (zero: never).
	Deadline   time.Time `json:"deadline,omitzero"`
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// Branch is the durable state of one branch (a saga step).
type Branch struct {
	GID   string `json:"-"`
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Action and Compensate are the states of the two operations.
	Action     BranchStatus `json:"action"`
	Compensate BranchStatus `json:"compensate"`
	// Attempts counts calls made for the current operation.
	ActionAttempts     int       `json:"action_attempts"`
	CompensateAttempts int       `json:"compensate_attempts"`
	LastError          string    `json:"last_error,omitempty"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// Event is one entry in a transaction's history: a branch call and its
// outcome, or a change of the transaction's status.
type Event struct {
	GID    string    `json:"-"`
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Branch int       `json:"branch"` // -1 for transaction-level events
	Op     Op        `json:"op,omitempty"`
	// Outcome of the call, or the new Status for transaction-level events.
	Outcome  string        `json:"outcome"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Owner is the lease owner that wrote the event (the coordinator that
	// drove the transaction at that moment). The store sets it from
	// Update.Owner (Tx.LeaseOwner for the creation event); empty for events
	// written before stores recorded it.
	Owner string `json:"owner,omitempty"`
}

// TxDetail is a transaction with its branches and (optionally) its history,
// as served by the coordinator's API.
type TxDetail struct {
	Tx
	Branches []Branch `json:"branches"`
	Events   []Event  `json:"events,omitempty"`
}
