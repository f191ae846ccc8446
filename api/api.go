// Package api declares the bodies of the coordinator's HTTP API, once, for
// the server (package server) and the Go SDK (package client) alike:
//
//	POST /v1/sagas                      body saga.Spec → dtx.TxDetail (201 created, 200 known, 202 still running after ?wait=true)
//	POST /v1/tcc                        body tcc.Spec → dtx.TxDetail (same)
//	POST /v1/xa                         body tcc.Spec → dtx.TxDetail (same; tries run in participant order)
//	GET  /v1/transactions               → ListResponse of TxSummary (query: status, limit, before, since, pattern, q)
//	GET  /v1/transactions/{gid}         → dtx.TxDetail with its events
//	POST /v1/transactions/{gid}/abort   optional body AbortRequest → AbortResponse (202)
//	POST /v1/transactions/{gid}/retry   no body → RetryResponse (202)
//	GET  /v1/attention                  → AttentionResponse (query: min_attempts, older_than, limit)
//	GET  /v1/events                     Server-Sent Events: "hello" and "counts" carry CountsEvent, "tx" carries TxChange (a TxSummary)
//	GET  /healthz                       → Health
//
// Errors are RFC 9457 problem details (application/problem+json) whose
// types are named in internal/problem. The request bodies of submissions
// are the specs of packages saga and tcc, and most answers are the
// vocabulary's dtx.TxDetail; this package declares the rest.
package api

import (
	"github.com/dtxhq/dtx"
)

// ListResponse is the body of GET /v1/transactions: a page of
// transaction summaries, newest first, plus the number of transactions
// per status.
type ListResponse struct {
	Transactions []TxSummary        `json:"transactions"`
	Counts       map[dtx.Status]int `json:"counts"`
}

// AbortRequest is the optional body of POST /v1/transactions/{gid}/abort.
//
// Without Force, a running saga before its pivot compensates (a saga past
// its pivot answers 409). With Force, any unfinished transaction is
// stopped where it stands: the coordinator stops driving it, cancels its
// calls in flight, and marks it failed with the reason "aborted by
// operator" (plus Reason and who did it), listing the branches that need a
// human in the answer and in its history. Force needs Operator; a finished
// transaction answers 409.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
	// Force stops the transaction without compensating what remains.
	Force bool `json:"force,omitempty"`
	// Operator names who aborts (recorded in the history with the
	// request's remote address); required with Force.
	Operator string `json:"operator,omitempty"`
}

// AbortResponse is the body of POST /v1/transactions/{gid}/abort: the
// transaction, and after a forced abort the branches left for a human.
type AbortResponse struct {
	dtx.TxDetail
	// Unresolved lists the branches whose action ran or may have run and
	// was not compensated (forced aborts only).
	Unresolved []UnresolvedBranch `json:"unresolved,omitempty"`
}

// UnresolvedBranch is a branch a forced abort left as it was: its effect
// may remain, and a human has to check it.
type UnresolvedBranch struct {
	Branch int    `json:"branch"`
	Name   string `json:"name"`
	// Why says what is known: the action succeeded, or its outcome is
	// unknown, and whether a compensation was tried.
	Why string `json:"why"`
}

// RetryResponse is the body of POST /v1/transactions/{gid}/retry: the
// transaction and how many calls waiting on backoff were released (0: none
// was waiting; a call in flight is not repeated).
type RetryResponse struct {
	dtx.TxDetail
	Retried int `json:"retried"`
}

// AttentionItem is one transaction in GET /v1/attention (its summary,
// like the list's), with its branches and the reasons it is listed.
type AttentionItem struct {
	TxSummary
	Branches []dtx.Branch `json:"branches"`
	// Why lists the reasons, one line each: an operation still pending
	// after min_attempts calls (with its last error), or the age.
	Why []string `json:"why"`
}

// AttentionResponse is the body of GET /v1/attention: unfinished
// transactions that need a look, oldest first.
type AttentionResponse struct {
	Transactions []AttentionItem `json:"transactions"`
	// The criteria applied (0: off).
	MinAttempts int          `json:"min_attempts"`
	OlderThan   dtx.Duration `json:"older_than"`
}

// TxChange is the data of a "tx" event of GET /v1/events: a transaction
// was created or changed. It is the transaction's summary (its spec is
// left out; GET /v1/transactions/{gid} has everything).
type TxChange = TxSummary

// CountsEvent is the data of the "hello" and "counts" events of GET
// /v1/events: transactions per status.
type CountsEvent struct {
	Counts map[dtx.Status]int `json:"counts"`
}

// Health is the body of GET /healthz.
type Health struct {
	// Active is the number of transactions this coordinator is driving.
	Active int `json:"active"`
	// Owner is the coordinator's lease owner name.
	Owner string `json:"owner"`
	// Status is "ok".
	Status string `json:"status"`
}
