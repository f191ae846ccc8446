package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/saga"
)

// AttentionQuery selects the transactions Attention lists: unfinished ones
// matching either criterion that is set (0: off).
type AttentionQuery struct {
	// MinAttempts lists transactions with an operation still pending after
	// at least this many calls.
	MinAttempts int
	// OlderThan lists transactions created at least this long ago.
	OlderThan time.Duration
	// Limit bounds the answer (0: the store's default of 100).
	Limit int
}

// Attention lists unfinished transactions an operator should look at,
// oldest first, each with its branches and the reasons it is listed: an
// operation still pending after q.MinAttempts calls (retrying unknown
// outcomes, or a compensation or confirm that keeps failing), with its last
// error, or its age past q.OlderThan. It reads the store once. With both
// criteria off it fails with dtx.ErrInvalid.
func (c *Coordinator) Attention(ctx context.Context, q AttentionQuery) ([]api.AttentionItem, error) {
	if q.MinAttempts <= 0 && q.OlderThan <= 0 {
		return nil, fmt.Errorf("%w: attention needs a number of calls or an age", dtx.ErrInvalid)
	}
	now := c.cfg.Now()
	f := dtx.AttentionFilter{MinAttempts: max(q.MinAttempts, 0), Limit: q.Limit}
	if q.OlderThan > 0 {
		f.CreatedBefore = now.Add(-q.OlderThan)
	}
	txs, err := c.store.Attention(ctx, f)
	if err != nil {
		return nil, err
	}
	// Our own parked transactions are listed whatever the filter: their
	// policy may allow fewer attempts than q.MinAttempts.
	listed := map[string]bool{}
	for i := range txs {
		listed[txs[i].GID] = true
	}
	c.mu.Lock()
	var extra []string
	for gid := range c.parked {
		if !listed[gid] {
			extra = append(extra, gid)
		}
	}
	c.mu.Unlock()
	for _, gid := range extra {
		tx, br, err := c.store.Get(ctx, gid)
		if err == nil {
			txs = append(txs, dtx.TxDetail{Tx: *tx, Branches: br})
		}
	}
	out := make([]api.AttentionItem, 0, len(txs))
	for i := range txs {
		d := &txs[i]
		why := attentionReasons(&d.Tx, d.Branches, f.MinAttempts, q.OlderThan, now)
		why = append(c.parkedReasons(&d.Tx, d.Branches), why...)
		if len(why) == 0 || d.Status.Terminal() {
			continue
		}
		out = append(out, api.AttentionItem{TxSummary: api.Summarize(&d.Tx), Branches: d.Branches, Why: why})
	}
	return out, nil
}

// attentionReasons says, one line each, why tx needs a look: each
// operation still pending after minAttempts calls (named as the
// participant sees it, e.g. confirm), and the age past olderThan.
func attentionReasons(tx *dtx.Tx, br []dtx.Branch, minAttempts int, olderThan time.Duration, now time.Time) []string {
	var spec saga.Spec
	known := json.Unmarshal(tx.Spec, &spec) == nil && len(spec.Steps) == len(br)
	var why []string
	for i, b := range br {
		check := func(role dtx.Op, st dtx.BranchStatus, attempts int) {
			if minAttempts == 0 || st != dtx.BranchPending || attempts < minAttempts {
				return
			}
			op := role
			if known {
				op = spec.Steps[i].WireOp(role)
			}
			line := fmt.Sprintf("branch %d (%s) %s: still pending after %d calls", b.Index, b.Name, op, attempts)
			if strings.Contains(b.LastError, dtx.TypeMisrouted) {
				line = fmt.Sprintf("step %d (%s) %s: %s", i+1, b.Name, op, strings.TrimSuffix(b.LastError, " ["+dtx.TypeMisrouted+"]"))
			} else if b.LastError != "" {
				line += "; last error: " + b.LastError
			}
			why = append(why, line)
		}
		if tx.Status == dtx.StatusRunning {
			check(dtx.OpAction, b.Action, b.ActionAttempts)
		}
		check(dtx.OpCompensate, b.Compensate, b.CompensateAttempts)
	}
	if age := now.Sub(tx.CreatedAt); olderThan > 0 && age >= olderThan {
		why = append(why, fmt.Sprintf("%s for %v (older than %v)", tx.Status, age.Round(time.Second), olderThan))
	}
	return why
}

// exhaustedReasons lists the operations of tx that wait for an operator:
// a compensation, or an action past the pivot (a TCC confirm), still
// pending after a whole multiple of its max_attempts (defaultMax for a
// step without a policy; 0: unlimited) calls.
func exhaustedReasons(tx *dtx.Tx, br []dtx.Branch, defaultMax int) []string {
	var spec saga.Spec
	if tx.Status.Terminal() || json.Unmarshal(tx.Spec, &spec) != nil || len(spec.Steps) != len(br) {
		return nil
	}
	var why []string
	for i, b := range br {
		st := &spec.Steps[i]
		m := defaultMax
		if st.Retry != nil && st.Retry.MaxAttempts > 0 {
			m = st.Retry.MaxAttempts
		}
		if m <= 0 {
			continue
		}
		check := func(op dtx.Op, s dtx.BranchStatus, attempts int) {
			if s == dtx.BranchPending && attempts > 0 && attempts%m == 0 {
				why = append(why, exhaustedWhy(opNoun(st.WireOp(op)), i, m))
			}
		}
		if st.Compensate == "" && tx.Status == dtx.StatusRunning {
			check(dtx.OpAction, b.Action, b.ActionAttempts)
		}
		if tx.Status == dtx.StatusCompensating {
			check(dtx.OpCompensate, b.Compensate, b.CompensateAttempts)
		}
	}
	return why
}

// parkedReasons are the lines of tx's operations that wait for an
// operator: what this coordinator parked, and what the stored attempt
// counts show (for transactions another coordinator drives).
func (c *Coordinator) parkedReasons(tx *dtx.Tx, br []dtx.Branch) []string {
	c.mu.Lock()
	why := slices.Clone(c.parked[tx.GID])
	c.mu.Unlock()
	for _, line := range exhaustedReasons(tx, br, c.cfg.RetryMaxAttempts) {
		if !slices.Contains(why, line) {
			why = append(why, line)
		}
	}
	return why
}
