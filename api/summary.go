package api

import (
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
)

// MaxSummaryReason bounds the reason in a TxSummary, in bytes; the detail
// (GET /v1/transactions/{gid}) has it whole.
const MaxSummaryReason = 256

// TxSummary is a transaction as GET /v1/transactions and the "tx" events
// of GET /v1/events carry it: small and bounded whatever was submitted
// (no spec, no payloads, no URLs; the reason cut to MaxSummaryReason).
// GET /v1/transactions/{gid} has the full record.
type TxSummary struct {
	GID     string      `json:"gid"`
	Pattern dtx.Pattern `json:"pattern"`
	Status  dtx.Status  `json:"status"`
	// Reason says why a transaction failed (or is compensating), cut to
	// MaxSummaryReason bytes with a trailing "…".
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Deadline is when the transaction times out (zero: never).
	Deadline   time.Time `json:"deadline,omitzero"`
	LeaseOwner string    `json:"lease_owner,omitempty"`
}

// Summarize returns the summary of tx.
func Summarize(tx *dtx.Tx) TxSummary {
	return TxSummary{
		GID: tx.GID, Pattern: tx.Pattern, Status: tx.Status, Reason: cutReason(tx.Reason),
		CreatedAt: tx.CreatedAt, UpdatedAt: tx.UpdatedAt, Deadline: tx.Deadline, LeaseOwner: tx.LeaseOwner,
	}
}

// Summaries returns the summaries of txs, never nil.
func Summaries(txs []dtx.Tx) []TxSummary {
	out := make([]TxSummary, len(txs))
	for i := range txs {
		out[i] = Summarize(&txs[i])
	}
	return out
}

func cutReason(s string) string {
	if len(s) <= MaxSummaryReason {
		return s
	}
	const ell = "…"
	cut := MaxSummaryReason - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}
