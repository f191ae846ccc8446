package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dtxhq/dtx"
)

// commitOneStatement writes a batch as a single SQL statement made of
// data-modifying CTEs (PostgreSQL), run in autocommit: one round trip and
// one commit for the whole batch, and no BEGIN/COMMIT exchanges. Each write
// stays atomic because all its rows are in the same statement; the batch is
// split into several statements only to respect the bind-parameter limit.
func (s *Store) commitOneStatement(batch []*write) ([]error, error) {
	results := make([]error, len(batch))
	var group []int
	params := 0
	inGroup := map[string]bool{} // gids updated in the current group
	// Each group commits on its own; a group that fails is retried one
	// write at a time, so one bad write fails alone and nothing that
	// committed is written twice.
	flush := func() {
		if len(group) == 0 {
			return
		}
		if err := s.execGroup(batch, group, results); err != nil {
			if len(group) == 1 {
				results[group[0]] = err
			} else {
				for _, i := range group {
					if err := s.execGroup(batch, []int{i}, results); err != nil {
						results[i] = err
					}
				}
			}
		}
		group, params = group[:0], 0
		clear(inGroup)
	}
	seen := map[string]bool{}
	for i, w := range batch {
		if w.ctx.Err() != nil {
			results[i] = w.ctx.Err()
			continue
		}
		if w.create != nil {
			// The same gid twice in one INSERT would be reported created
			// twice; the later one finds the gid taken either way.
			if seen[w.create.tx.GID] {
				results[i] = dtx.ErrExists
				continue
			}
			seen[w.create.tx.GID] = true
		}
		n := paramsOf(w)
		// Two updates of one gid in one statement would join one row twice
		// (only one applies): give the second its own statement.
		if params+n > maxParams || (w.update != nil && inGroup[w.update.GID]) {
			flush()
		}
		if w.update != nil {
			inGroup[w.update.GID] = true
		}
		group = append(group, i)
		params += n
	}
	flush()
	return results, nil
}

func paramsOf(w *write) int {
	if w.create != nil {
		return len(txTypes) + len(w.create.branches)*len(branchTypes) + len(eventTypes)
	}
	u := w.update
	return len(txUpdateTypes) + len(u.Branches)*len(branchUpdateType) + len(u.Events)*len(eventTypes)
}

// batchShape is what the text of a batch statement depends on: how many
// rows of each kind it writes. Batches of one shape share one SQL text,
// built once (Store.batchSQL) and prepared once by the driver's statement
// cache.
type batchShape struct {
	tx, br, upd, ub, ev int
}

// maxShapes bounds the cache of batch statement texts.
const maxShapes = 1024

// sqlFor returns the statement text of a batch of shape sh.
func (s *Store) sqlFor(sh batchShape) string {
	if q, ok := s.shapes.Load(sh); ok {
		return q.(string)
	}
	q := batchSQL(sh)
	if s.nShapes.Load() < maxShapes {
		if _, loaded := s.shapes.LoadOrStore(sh, q); !loaded {
			s.nShapes.Add(1)
		}
	}
	return q
}

// stmt accumulates the CTEs of one statement.
type stmt struct {
	b     strings.Builder
	nargs int
	ctes  int
}

// values writes a CTE of n rows of placeholders typed as types.
func (s *stmt) values(name, cols string, types []string, n int) {
	if s.ctes > 0 {
		s.b.WriteString(",\n")
	} else {
		s.b.WriteString("WITH ")
	}
	s.ctes++
	fmt.Fprintf(&s.b, "%s (%s) AS (VALUES ", name, cols)
	for i := range n {
		if i > 0 {
			s.b.WriteString(", ")
		}
		s.b.WriteByte('(')
		for j, t := range types {
			if j > 0 {
				s.b.WriteString(", ")
			}
			s.nargs++
			s.b.WriteByte('$')
			s.b.WriteString(strconv.Itoa(s.nargs))
			s.b.WriteString("::")
			s.b.WriteString(t)
		}
		s.b.WriteByte(')')
	}
	s.b.WriteByte(')')
}

func (s *stmt) cte(name, body string) {
	if s.ctes > 0 {
		s.b.WriteString(",\n")
	} else {
		s.b.WriteString("WITH ")
	}
	s.ctes++
	fmt.Fprintf(&s.b, "%s AS (%s)", name, body)
}

// eventBatchTypes are the columns of an event row in a batch statement:
// the event's, then its kind (c: of a create, u: of an update) and its
// ordinal in the batch.
var eventBatchTypes = append(eventTypes[:len(eventTypes):len(eventTypes)], "TEXT", "BIGINT")

// batchSQL builds the statement of a batch of shape sh; its arguments are
// the rows of created transactions, their branches, the updates, the
// updated branches and the events, in that order (execGroup).
func batchSQL(sh batchShape) string {
	var st stmt
	var done []string // CTE names yielding ("c"|"u", gid) rows
	if sh.tx > 0 {
		st.values("ct", "gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until", txTypes, sh.tx)
		st.cte("ins", `INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
			SELECT * FROM ct ON CONFLICT (gid) DO NOTHING RETURNING gid, created_at`)
		done = append(done, "SELECT 'c', gid FROM ins")
		if sh.br > 0 {
			st.values("cb", "gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at, tx_created", branchTypes, sh.br)
			st.cte("insb", `INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at, tx_created)
				SELECT cb.* FROM cb JOIN ins ON ins.gid = cb.gid`)
		}
	}
	if sh.upd > 0 {
		st.values("uv", "gid, owner, at, status, reason, rel", txUpdateTypes, sh.upd)
		st.cte("upd", `UPDATE dtx_tx SET updated_at = uv.at,
			status = CASE WHEN uv.status = '' THEN dtx_tx.status ELSE uv.status END,
			reason = CASE WHEN uv.reason = '' THEN dtx_tx.reason ELSE uv.reason END,
			lease_owner = CASE WHEN uv.rel = 1 THEN '' ELSE dtx_tx.lease_owner END,
			lease_until = CASE WHEN uv.rel = 1 THEN 0 ELSE dtx_tx.lease_until END
			FROM uv WHERE dtx_tx.gid = uv.gid AND dtx_tx.lease_owner = uv.owner AND uv.owner <> ''
			RETURNING dtx_tx.gid, dtx_tx.created_at`)
		done = append(done, "SELECT 'u', gid FROM upd")
		if sh.ub > 0 {
			st.values("ub", "gid, idx, action, compensate, aa, ca, err, at", branchUpdateType, sh.ub)
			st.cte("updb", `UPDATE dtx_branch SET action = ub.action, compensate = ub.compensate,
				action_attempts = ub.aa, compensate_attempts = ub.ca, last_error = ub.err, updated_at = ub.at
				FROM ub JOIN upd ON upd.gid = ub.gid
				WHERE dtx_branch.tx_created = upd.created_at AND dtx_branch.gid = ub.gid AND dtx_branch.idx = ub.idx`)
		}
	}
	if sh.ev > 0 {
		st.values("ev", "gid, at, branch, op, outcome, detail, duration_us, owner, kind, ord", eventBatchTypes, sh.ev)
		var src []string
		if sh.tx > 0 {
			src = append(src, "SELECT 'c' AS kind, gid, created_at FROM ins")
		}
		if sh.upd > 0 {
			src = append(src, "SELECT 'u' AS kind, gid, created_at FROM upd")
		}
		// Each event carries its transaction's creation time, as written
		// (tx_created: see ofTx).
		st.cte("inse", `INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner, tx_created)
			SELECT ev.gid, ev.at, ev.branch, ev.op, ev.outcome, ev.detail, ev.duration_us, ev.owner, w.created_at FROM ev
			JOIN (`+strings.Join(src, " UNION ALL ")+`) w ON w.kind = ev.kind AND w.gid = ev.gid ORDER BY ev.ord`)
	}
	st.b.WriteString("\n" + strings.Join(done, " UNION ALL "))
	return st.b.String()
}

func (s *Store) execGroup(batch []*write, group []int, results []error) error {
	// Events carry their kind (c: of a create, u: of an update) so that a
	// create that finds its gid taken cannot slip its event into the
	// history of an update of that gid in the same statement, and an
	// ordinal so they are inserted (and numbered) in order.
	var sh batchShape
	params := 0
	for _, i := range group {
		w := batch[i]
		params += paramsOf(w)
		if c := w.create; c != nil {
			sh.tx++
			sh.br += len(c.branches)
			sh.ev++
			continue
		}
		sh.upd++
		sh.ub += len(w.update.Branches)
		sh.ev += len(w.update.Events)
	}
	args := make([]any, 0, params+2*sh.ev)
	for _, i := range group { // ct
		if c := batch[i].create; c != nil {
			args = appendTxRow(args, c.tx)
		}
	}
	for _, i := range group { // cb
		if c := batch[i].create; c != nil {
			for _, b := range c.branches {
				args = appendBranchRow(args, c.tx.GID, b, c.tx.CreatedAt)
			}
		}
	}
	for _, i := range group { // uv
		if u := batch[i].update; u != nil {
			args = appendTxUpdateRow(args, u)
		}
	}
	for _, i := range group { // ub
		if u := batch[i].update; u != nil {
			for _, b := range u.Branches {
				args = appendBranchUpdateRow(args, u, b)
			}
		}
	}
	ord := int64(0)
	for _, i := range group { // ev
		w := batch[i]
		if c := w.create; c != nil {
			args = append(appendEventRow(args, c.tx.GID, c.tx.LeaseOwner, createdEvent(c.tx)), "c", ord)
			ord++
			continue
		}
		for _, e := range w.update.Events {
			args = append(appendEventRow(args, w.update.GID, w.update.Owner, e), "u", ord)
			ord++
		}
	}

	rows, err := s.db.QueryContext(context.Background(), s.sqlFor(sh), args...)
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	defer rows.Close()
	created, updated := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var kind, gid string
		if err := rows.Scan(&kind, &gid); err != nil {
			return fmt.Errorf("write batch: %w", err)
		}
		if kind == "c" {
			created[gid] = true
		} else {
			updated[gid] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	for _, i := range group {
		w := batch[i]
		switch {
		case w.create != nil && !created[w.create.tx.GID]:
			results[i] = dtx.ErrExists
		case w.update != nil && !updated[w.update.GID]:
			results[i] = dtx.ErrLeaseLost
		}
	}
	return nil
}
