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

// stmt accumulates the CTEs of one statement.
type stmt struct {
	b    strings.Builder
	args []any
	ctes int
}

func (s *stmt) values(name, cols string, types []string, rows [][]any) {
	if s.ctes > 0 {
		s.b.WriteString(",\n")
	} else {
		s.b.WriteString("WITH ")
	}
	s.ctes++
	fmt.Fprintf(&s.b, "%s (%s) AS (VALUES ", name, cols)
	for i, r := range rows {
		if i > 0 {
			s.b.WriteString(", ")
		}
		s.b.WriteByte('(')
		for j, v := range r {
			if j > 0 {
				s.b.WriteString(", ")
			}
			s.args = append(s.args, v)
			s.b.WriteByte('$')
			s.b.WriteString(strconv.Itoa(len(s.args)))
			s.b.WriteString("::")
			s.b.WriteString(types[j])
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

func (s *Store) execGroup(batch []*write, group []int, results []error) error {
	// Events carry their kind (c: of a create, u: of an update) so that a
	// create that finds its gid taken cannot slip its event into the
	// history of an update of that gid in the same statement, and an
	// ordinal so they are inserted (and numbered) in order.
	var txRows, brRows, evRows, updRows, ubRows [][]any
	event := func(kind, gid, owner string, e dtx.Event) {
		evRows = append(evRows, append(eventRow(gid, owner, e), kind, int64(len(evRows))))
	}
	for _, i := range group {
		w := batch[i]
		if c := w.create; c != nil {
			txRows = append(txRows, txRow(c.tx))
			for _, b := range c.branches {
				brRows = append(brRows, branchRow(c.tx.GID, b, c.tx.CreatedAt))
			}
			event("c", c.tx.GID, c.tx.LeaseOwner, createdEvent(c.tx))
			continue
		}
		u := w.update
		updRows = append(updRows, txUpdateRow(u))
		for _, b := range u.Branches {
			ubRows = append(ubRows, branchUpdateRow(u, b))
		}
		for _, e := range u.Events {
			event("u", u.GID, u.Owner, e)
		}
	}
	var st stmt
	var done []string // CTE names yielding ("c"|"u", gid) rows
	if len(txRows) > 0 {
		st.values("ct", "gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until", txTypes, txRows)
		st.cte("ins", `INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
			SELECT * FROM ct ON CONFLICT (gid) DO NOTHING RETURNING gid`)
		done = append(done, "SELECT 'c', gid FROM ins")
		if len(brRows) > 0 {
			st.values("cb", "gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at", branchTypes, brRows)
			st.cte("insb", `INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at)
				SELECT cb.* FROM cb JOIN ins ON ins.gid = cb.gid`)
		}
	}
	if len(updRows) > 0 {
		st.values("uv", "gid, owner, at, status, reason, rel", txUpdateTypes, updRows)
		st.cte("upd", `UPDATE dtx_tx SET updated_at = uv.at,
			status = CASE WHEN uv.status = '' THEN dtx_tx.status ELSE uv.status END,
			reason = CASE WHEN uv.reason = '' THEN dtx_tx.reason ELSE uv.reason END,
			lease_owner = CASE WHEN uv.rel = 1 THEN '' ELSE dtx_tx.lease_owner END,
			lease_until = CASE WHEN uv.rel = 1 THEN 0 ELSE dtx_tx.lease_until END
			FROM uv WHERE dtx_tx.gid = uv.gid AND dtx_tx.lease_owner = uv.owner AND uv.owner <> ''
			RETURNING dtx_tx.gid`)
		done = append(done, "SELECT 'u', gid FROM upd")
		if len(ubRows) > 0 {
			st.values("ub", "gid, idx, action, compensate, aa, ca, err, at", branchUpdateType, ubRows)
			st.cte("updb", `UPDATE dtx_branch SET action = ub.action, compensate = ub.compensate,
				action_attempts = ub.aa, compensate_attempts = ub.ca, last_error = ub.err, updated_at = ub.at
				FROM ub JOIN upd ON upd.gid = ub.gid WHERE dtx_branch.gid = ub.gid AND dtx_branch.idx = ub.idx`)
		}
	}
	if len(evRows) > 0 {
		st.values("ev", "gid, at, branch, op, outcome, detail, duration_us, owner, kind, ord", append(eventTypes[:len(eventTypes):len(eventTypes)], "TEXT", "BIGINT"), evRows)
		var src []string
		if len(txRows) > 0 {
			src = append(src, "SELECT 'c', gid FROM ins")
		}
		if len(updRows) > 0 {
			src = append(src, "SELECT 'u', gid FROM upd")
		}
		st.cte("inse", `INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner)
			SELECT ev.gid, ev.at, ev.branch, ev.op, ev.outcome, ev.detail, ev.duration_us, ev.owner FROM ev
			WHERE (ev.kind, ev.gid) IN (`+strings.Join(src, " UNION ALL ")+`) ORDER BY ev.ord`)
	}
	st.b.WriteString("\n" + strings.Join(done, " UNION ALL "))

	rows, err := s.db.QueryContext(context.Background(), st.b.String(), st.args...)
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
