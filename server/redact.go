package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
)

// Redaction of participants' error details.
//
// What a participant answered (an error body, a redirect's target) and why a
// call could not be made (a dial error: "connection refused", "no such
// host") tell a reader about hosts and ports the coordinator can reach; on
// an open API they make the coordinator a port scanner for anyone who can
// submit. So when the server has an admin token (WithAdminToken), a request
// without it reads those details replaced by Hidden, on every read that
// carries them: GET /v1/transactions, /v1/transactions/{gid},
// /v1/attention, the "tx" events of /v1/events, and the answer of a
// submission. Statuses, outcome classes, attempts, step names and the
// structure of reasons ("step 1 (pay) failed: ...") stay visible. A server
// without an admin token has no secret readers: it shows everything.
//
// The details live in Branch.LastError and Event.Detail of branch calls
// (always from a participant or the transport), and in the reasons the
// coordinator writes from them: Tx.Reason and the transaction-level
// events' Detail ("step N (name) failed: <detail>", "...: last error:
// <detail>"), and the attention lines ("...; last error: <detail>").
// Everything after the first of those markers is hidden.

// Hidden replaces a participant's error detail for a reader without the
// admin token.
const Hidden = "hidden: admin token required"

// detailMarkers introduce participant text in the coordinator's reasons;
// everything after the first one is hidden.
var detailMarkers = []string{") failed: ", "last error: "}

// reveal reports whether r may read participants' error details: always
// when the server has no admin token, else only with the token.
func (s *Server) reveal(r *http.Request) bool {
	if s.adminHash == nil {
		return true
	}
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], s.adminHash) == 1
}

// redactReason hides what follows the first detail marker of reason.
func redactReason(reason string) string {
	cut := -1
	for _, m := range detailMarkers {
		if i := strings.Index(reason, m); i >= 0 && (cut < 0 || i+len(m) < cut) {
			cut = i + len(m)
		}
	}
	if cut < 0 {
		return reason
	}
	return reason[:cut] + Hidden
}

// redactTxs returns txs with their reasons redacted (a copy).
func redactTxs(txs []dtx.Tx) []dtx.Tx {
	out := make([]dtx.Tx, len(txs))
	for i, tx := range txs {
		tx.Reason = redactReason(tx.Reason)
		out[i] = tx
	}
	return out
}

// redactBranches returns br without their last errors (a copy).
func redactBranches(br []dtx.Branch) []dtx.Branch {
	if br == nil {
		return nil
	}
	out := make([]dtx.Branch, len(br))
	for i, b := range br {
		if b.LastError != "" {
			b.LastError = Hidden
		}
		out[i] = b
	}
	return out
}

// redactEvents returns evs with branch calls' details hidden and reasons
// redacted (a copy).
func redactEvents(evs []dtx.Event) []dtx.Event {
	if evs == nil {
		return nil
	}
	out := make([]dtx.Event, len(evs))
	for i, e := range evs {
		switch {
		case e.Branch >= 0 && e.Detail != "":
			e.Detail = Hidden
		case e.Branch < 0:
			e.Detail = redactReason(e.Detail)
		}
		out[i] = e
	}
	return out
}

// detailFor returns d as r may read it (d itself, or a redacted copy: d's
// slices may be shared with a running transaction).
func (s *Server) detailFor(r *http.Request, d *dtx.TxDetail) *dtx.TxDetail {
	if s.reveal(r) {
		return d
	}
	c := *d
	c.Reason = redactReason(c.Reason)
	c.Branches = redactBranches(c.Branches)
	c.Events = redactEvents(c.Events)
	return &c
}

// txsFor returns txs as r may read them.
func (s *Server) txsFor(r *http.Request, txs []dtx.Tx) []dtx.Tx {
	if s.reveal(r) {
		return txs
	}
	return redactTxs(txs)
}

// attentionFor returns items as r may read them.
func (s *Server) attentionFor(r *http.Request, items []api.AttentionItem) []api.AttentionItem {
	if s.reveal(r) {
		return items
	}
	out := make([]api.AttentionItem, len(items))
	for i, it := range items {
		it.Reason = redactReason(it.Reason)
		it.Branches = redactBranches(it.Branches)
		why := make([]string, len(it.Why))
		for j, w := range it.Why {
			why[j] = redactReason(w)
		}
		it.Why = why
		out[i] = it
	}
	return out
}

// revealKey marks, in a request's context, a reader of /v1/events allowed
// to see participants' error details.
type revealKey struct{}

// serveEvents serves /v1/events, telling the stream whether its reader may
// see participants' error details.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	s.events.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), revealKey{}, s.reveal(r))))
}

// revealed reports whether the stream of ctx may show error details (no:
// when not known).
func revealed(ctx context.Context) bool {
	v, _ := ctx.Value(revealKey{}).(bool)
	return v
}

// dataFor returns the data of e as its reader may see it.
func (e sseEvent) dataFor(reveal bool) []byte {
	if reveal || e.public == nil {
		return e.data
	}
	return e.public
}

// publishChange publishes a "tx" event, with a redacted copy for readers
// without the admin token when the reason has details.
func (h *hub) publishChange(c api.TxChange) {
	data, err := json.Marshal(c)
	if err != nil {
		return
	}
	ev := sseEvent{name: "tx", data: data}
	if red := redactReason(c.Reason); red != c.Reason {
		c.Reason = red
		if ev.public, err = json.Marshal(c); err != nil {
			return
		}
	}
	h.publish(ev)
}
