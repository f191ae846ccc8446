package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/dtxhq/dtx"
)

// maxParams keeps every statement under the bind-parameter limits of the
// supported databases (SQLite 32766, PostgreSQL 65535).
const maxParams = 30000

// rowsWriter builds multi-row statements: a fixed head, one "(…)" group of
// numbered placeholders per row, and a tail. Every placeholder is wrapped
// in a CAST so that PostgreSQL can type parameters inside a VALUES list.
type rowsWriter struct {
	head, tail string
	types      []string // SQL type of each column
}

// exec runs the statement over rows in chunks that respect maxParams and
// returns what the RETURNING clause (if any) yields as strings.
func (w rowsWriter) exec(ctx context.Context, tx *sql.Tx, rows [][]any, returning bool) ([]string, error) {
	per := len(w.types)
	chunk := max(maxParams/per, 1)
	var out []string
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var b strings.Builder
		b.WriteString(w.head)
		args := make([]any, 0, len(part)*per)
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range r {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, v)
				fmt.Fprintf(&b, "CAST($%d AS %s)", len(args), w.types[j])
			}
			b.WriteByte(')')
		}
		b.WriteString(w.tail)
		if !returning {
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				return nil, err
			}
			continue
		}
		rs, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				rs.Close()
				return nil, err
			}
			out = append(out, s)
		}
		if err := rs.Close(); err != nil {
			return nil, err
		}
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var (
	insertTxs = rowsWriter{
		head:  `INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until) VALUES `,
		tail:  ` ON CONFLICT (gid) DO NOTHING RETURNING gid`,
		types: []string{"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT"},
	}
	insertBranches = rowsWriter{
		head:  `INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at) VALUES `,
		types: []string{"TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT"},
	}
	insertEvents = rowsWriter{
		head:  `INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us) VALUES `,
		types: []string{"TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT"},
	}
	// The lease fence: a row is updated only where the writer owns it; the
	// gids returned are the writes that may proceed.
	updateTxs = rowsWriter{
		head: `WITH v (gid, owner, at, status, reason, rel) AS (VALUES `,
		tail: `) UPDATE dtx_tx SET updated_at = v.at,
			status = CASE WHEN v.status = '' THEN dtx_tx.status ELSE v.status END,
			reason = CASE WHEN v.reason = '' THEN dtx_tx.reason ELSE v.reason END,
			lease_owner = CASE WHEN v.rel = 1 THEN '' ELSE dtx_tx.lease_owner END,
			lease_until = CASE WHEN v.rel = 1 THEN 0 ELSE dtx_tx.lease_until END
			FROM v WHERE dtx_tx.gid = v.gid AND dtx_tx.lease_owner = v.owner AND v.owner <> ''
			RETURNING dtx_tx.gid`,
		types: []string{"TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT"},
	}
	updateBranches = rowsWriter{
		head: `WITH v (gid, idx, action, compensate, aa, ca, err, at) AS (VALUES `,
		tail: `) UPDATE dtx_branch SET action = v.action, compensate = v.compensate,
			action_attempts = v.aa, compensate_attempts = v.ca, last_error = v.err, updated_at = v.at
			FROM v WHERE dtx_branch.gid = v.gid AND dtx_branch.idx = v.idx`,
		types: []string{"TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT"},
	}
)

// commitBatch writes a batch in one transaction with a constant number of
// statements, whatever its size: creates, then fenced updates, then the
// branch and event rows of the writes that went through.
func (s *Store) commitBatch(batch []*write) ([]error, error) {
	ctx := context.Background()
	results := make([]error, len(batch))
	var creates, updates []int
	for i, w := range batch {
		switch {
		case w.ctx.Err() != nil:
			results[i] = w.ctx.Err() // the caller gave up before we started
		case w.create != nil:
			creates = append(creates, i)
		default:
			updates = append(updates, i)
		}
	}
	if len(creates) == 0 && len(updates) == 0 {
		return results, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var branchIns, eventIns, branchUpd [][]any

	if len(creates) > 0 {
		rows := make([][]any, 0, len(creates))
		for _, i := range creates {
			t := batch[i].create.tx
			rows = append(rows, []any{t.GID, string(t.Pattern), string(t.Status), t.Reason, string(t.Spec), t.Digest,
				ms(t.CreatedAt), ms(t.UpdatedAt), ms(t.Deadline), t.LeaseOwner, ms(t.LeaseUntil)})
		}
		created, err := insertTxs.exec(ctx, tx, rows, true)
		if err != nil {
			return nil, fmt.Errorf("insert transactions: %w", err)
		}
		ok := set(created)
		for _, i := range creates {
			c := batch[i].create
			if !ok[c.tx.GID] {
				results[i] = dtx.ErrExists
				continue
			}
			for _, b := range c.branches {
				branchIns = append(branchIns, []any{c.tx.GID, b.Index, b.Name, string(b.Action), string(b.Compensate),
					b.ActionAttempts, b.CompensateAttempts, b.LastError, ms(c.tx.CreatedAt)})
			}
			eventIns = append(eventIns, eventRow(c.tx.GID, dtx.Event{At: c.tx.CreatedAt, Branch: -1, Outcome: string(c.tx.Status), Detail: "submitted"}))
		}
	}

	if len(updates) > 0 {
		rows := make([][]any, 0, len(updates))
		for _, i := range updates {
			u := batch[i].update
			rel := 0
			if u.Release {
				rel = 1
			}
			rows = append(rows, []any{u.GID, u.Owner, ms(u.At), string(u.Status), truncate(u.Reason, 1000), rel})
		}
		fenced, err := updateTxs.exec(ctx, tx, rows, true)
		if err != nil {
			return nil, fmt.Errorf("update transactions: %w", err)
		}
		ok := set(fenced)
		for _, i := range updates {
			u := batch[i].update
			if !ok[u.GID] {
				results[i] = dtx.ErrLeaseLost
				continue
			}
			for _, b := range u.Branches {
				branchUpd = append(branchUpd, []any{u.GID, b.Index, string(b.Action), string(b.Compensate),
					b.ActionAttempts, b.CompensateAttempts, truncate(b.LastError, 1000), ms(u.At)})
			}
			for _, e := range u.Events {
				eventIns = append(eventIns, eventRow(u.GID, e))
			}
		}
	}

	if len(branchIns) > 0 {
		if _, err := insertBranches.exec(ctx, tx, branchIns, false); err != nil {
			return nil, fmt.Errorf("insert branches: %w", err)
		}
	}
	if len(branchUpd) > 0 {
		if _, err := updateBranches.exec(ctx, tx, branchUpd, false); err != nil {
			return nil, fmt.Errorf("update branches: %w", err)
		}
	}
	if len(eventIns) > 0 {
		if _, err := insertEvents.exec(ctx, tx, eventIns, false); err != nil {
			return nil, fmt.Errorf("insert events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}

func eventRow(gid string, e dtx.Event) []any {
	return []any{gid, ms(e.At), e.Branch, string(e.Op), e.Outcome, truncate(e.Detail, 1000), e.Duration.Microseconds()}
}

func set(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}
