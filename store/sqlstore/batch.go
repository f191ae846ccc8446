package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
)

// maxParams keeps every statement under the bind-parameter limits of the
// supported databases (SQLite 32766, PostgreSQL 65535).
const maxParams = 30000

// Row layouts shared by both batch writers: the column types (for casts in
// multi-row VALUES lists) and the functions that build one row's arguments.
var (
	txTypes          = []string{"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT"}
	branchTypes      = []string{"TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BIGINT"}
	eventTypes       = []string{"TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT"}
	txUpdateTypes    = []string{"TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT"}
	branchUpdateType = []string{"TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT"}
)

// appendTxRow and the functions below append one row's arguments, in the
// row layouts above, to args.
func appendTxRow(args []any, t *dtx.Tx) []any {
	return append(args, t.GID, string(t.Pattern), string(t.Status), t.Reason, string(t.Spec), t.Digest,
		ms(t.CreatedAt), ms(t.UpdatedAt), ms(t.Deadline), t.LeaseOwner, ms(t.LeaseUntil))
}

// appendBranchRow appends a branch of a transaction created at created, as
// inserted (updated_at and tx_created are both the creation time).
func appendBranchRow(args []any, gid string, b dtx.Branch, created time.Time) []any {
	return append(args, gid, b.Index, b.Name, string(b.Action), string(b.Compensate),
		b.ActionAttempts, b.CompensateAttempts, truncate(b.LastError, 1000), ms(created), ms(created))
}

// appendEventRow appends an event as inserted, recording owner as its
// writer.
func appendEventRow(args []any, gid, owner string, e dtx.Event) []any {
	return append(args, gid, ms(e.At), e.Branch, string(e.Op), e.Outcome, truncate(e.Detail, 1000), e.Duration.Microseconds(), owner)
}

func createdEvent(t *dtx.Tx) dtx.Event {
	return dtx.Event{At: t.CreatedAt, Branch: -1, Outcome: string(t.Status), Detail: "submitted", Owner: t.LeaseOwner}
}

func appendTxUpdateRow(args []any, u *dtx.Update) []any {
	rel := 0
	if u.Release {
		rel = 1
	}
	return append(args, u.GID, u.Owner, ms(u.At), string(u.Status), truncate(u.Reason, 1000), rel)
}

func appendBranchUpdateRow(args []any, u *dtx.Update, b dtx.Branch) []any {
	return append(args, u.GID, b.Index, string(b.Action), string(b.Compensate),
		b.ActionAttempts, b.CompensateAttempts, truncate(b.LastError, 1000), ms(u.At))
}

// Single-row statements of the transactional batch writer, with arguments
// in the row layouts above.
const (
	sqlInsertTx = `INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (gid) DO NOTHING`
	sqlInsertBranch = `INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at, tx_created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	// Events and branches are keyed by their transaction's creation time
	// (tx_created) first: see ofTx.
	sqlInsertEvent = `INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner, tx_created)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, created_at FROM dtx_tx WHERE gid = $1`
	// The lease fence: the row changes only where the writer owns it.
	sqlUpdateTx = `UPDATE dtx_tx SET updated_at = $3,
		status = CASE WHEN $4 = '' THEN status ELSE $4 END,
		reason = CASE WHEN $5 = '' THEN reason ELSE $5 END,
		lease_owner = CASE WHEN $6 = 1 THEN '' ELSE lease_owner END,
		lease_until = CASE WHEN $6 = 1 THEN 0 ELSE lease_until END
		WHERE gid = $1 AND lease_owner = $2 AND $2 <> ''`
	sqlUpdateBranch = `UPDATE dtx_branch SET action = $3, compensate = $4, action_attempts = $5,
		compensate_attempts = $6, last_error = $7, updated_at = $8 WHERE ` + ofTx + ` AND idx = $2`
)

// stmts are the prepared statements of the transactional writer: preparing
// once matters for SQLite, where parsing SQL costs more than running it.
type stmts struct {
	insertTx, insertBranch, insertEvent, updateTx, updateBranch prepared
}

// prepared is a statement with the argument order of its placeholders (see
// Dialect.bind).
type prepared struct {
	st    *sql.Stmt
	order []int
}

// in returns the statement bound to tx.
func (p prepared) in(ctx context.Context, tx *sql.Tx) prepared {
	return prepared{st: tx.StmtContext(ctx, p.st), order: p.order}
}

// exec runs the statement with arguments in the row layout.
func (p prepared) exec(ctx context.Context, args []any) (sql.Result, error) {
	if p.order != nil {
		args = reorder(p.order, args)
	}
	return p.st.ExecContext(ctx, args...)
}

func prepare(ctx context.Context, db *sql.DB, d Dialect) (*stmts, error) {
	var s stmts
	for _, p := range []struct {
		dst *prepared
		sql string
	}{
		{&s.insertTx, d.stmt(d.Override.InsertTx, sqlInsertTx)}, {&s.insertBranch, sqlInsertBranch}, {&s.insertEvent, sqlInsertEvent},
		{&s.updateTx, sqlUpdateTx}, {&s.updateBranch, sqlUpdateBranch},
	} {
		q := p.sql
		if d.BindVars == Question {
			q, p.dst.order = rebindQuestion(q)
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		p.dst.st = st
	}
	return &s, nil
}

func (s *stmts) close() {
	for _, p := range []prepared{s.insertTx, s.insertBranch, s.insertEvent, s.updateTx, s.updateBranch} {
		if p.st != nil {
			p.st.Close()
		}
	}
}

// commitBatch writes a batch in one database transaction with prepared
// single-row statements. Writes that change nothing (ErrExists,
// ErrLeaseLost) do not abort the batch.
func (s *Store) commitBatch(batch []*write) ([]error, error) {
	ctx := context.Background()
	results := make([]error, len(batch))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	insTx, insBranch, insEvent := s.stmts.insertTx.in(ctx, tx), s.stmts.insertBranch.in(ctx, tx), s.stmts.insertEvent.in(ctx, tx)
	updTx, updBranch := s.stmts.updateTx.in(ctx, tx), s.stmts.updateBranch.in(ctx, tx)
	// One argument buffer for every statement: database/sql copies the
	// arguments before it returns.
	args := make([]any, 0, len(txTypes))
	for i, w := range batch {
		if w.ctx.Err() != nil {
			results[i] = w.ctx.Err() // the caller gave up before we started
			continue
		}
		if c := w.create; c != nil {
			res, err := insTx.exec(ctx, appendTxRow(args[:0], c.tx))
			if err != nil && s.d.IsUniqueViolation != nil && s.d.IsUniqueViolation(err) {
				// Dialects whose InsertTx fails on a taken gid (see
				// Statements.InsertTx): only the statement was undone.
				results[i] = dtx.ErrExists
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("insert tx %s: %w", c.tx.GID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				results[i] = dtx.ErrExists
				continue
			}
			for _, b := range c.branches {
				if _, err := insBranch.exec(ctx, appendBranchRow(args[:0], c.tx.GID, b, c.tx.CreatedAt)); err != nil {
					return nil, fmt.Errorf("insert branch %s/%d: %w", c.tx.GID, b.Index, err)
				}
			}
			if _, err := insEvent.exec(ctx, appendEventRow(args[:0], c.tx.GID, c.tx.LeaseOwner, createdEvent(c.tx))); err != nil {
				return nil, fmt.Errorf("insert event %s: %w", c.tx.GID, err)
			}
			continue
		}
		u := w.update
		res, err := updTx.exec(ctx, appendTxUpdateRow(args[:0], u))
		if err != nil {
			return nil, fmt.Errorf("update tx %s: %w", u.GID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			results[i] = dtx.ErrLeaseLost
			continue
		}
		for _, b := range u.Branches {
			if _, err := updBranch.exec(ctx, appendBranchUpdateRow(args[:0], u, b)); err != nil {
				return nil, fmt.Errorf("update branch %s/%d: %w", u.GID, b.Index, err)
			}
		}
		for _, e := range u.Events {
			if _, err := insEvent.exec(ctx, appendEventRow(args[:0], u.GID, u.Owner, e)); err != nil {
				return nil, fmt.Errorf("insert event %s: %w", u.GID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}
