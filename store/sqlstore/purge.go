package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
)

var _ dtx.Purger = (*Store)(nil)

// finished is the SQL condition of a terminal transaction (dtx.Status.Terminal).
const finished = `status IN ('succeeded', 'failed')`

// MaxPurgeBatch bounds the rows one PurgeFinished call deletes, whatever
// limit it is given, so a purge never holds locks for long.
const MaxPurgeBatch = 1000

// PurgeFinished implements dtx.Purger: one short transaction selects at most
// limit finished transactions last updated before `before`, deletes their
// events and branches, then the transactions themselves (checking again
// that each is finished and old, so a row that changed in between is kept).
// It bypasses the group-commit writers: finished transactions are never
// written again, so it cannot conflict with their batches.
func (s *Store) PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	limit = min(limit, MaxPurgeBatch)
	cutoff := ms(before)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	defer tx.Rollback()
	// created_at <= updated_at, so the created_at bound lets the
	// (status, created_at) index narrow the scan.
	q, args := s.d.Bind(`SELECT gid, created_at FROM dtx_tx WHERE `+finished+` AND created_at < $1 AND updated_at < $1
		ORDER BY created_at LIMIT $2`, []any{cutoff, limit})
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	var gids []any
	var keys []any // (tx_created, gid) of each, the key of its branches and events
	for rows.Next() {
		var gid string
		var created int64
		if err := rows.Scan(&gid, &created); err != nil {
			rows.Close()
			return 0, fmt.Errorf("purge: %w", err)
		}
		gids, keys = append(gids, gid), append(keys, created, gid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	if len(gids) == 0 {
		return 0, nil
	}
	// The transactions first: only those still finished and old are
	// deleted; then the branches and events of those gone.
	in := dollarList(2, len(gids))
	res, err := s.execTx(ctx, tx, `DELETE FROM dtx_tx WHERE gid IN (`+in+`) AND `+finished+` AND updated_at < $1`,
		append([]any{cutoff}, gids...))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	// Branches and events are keyed by their transaction's creation time
	// and gid (ofTx): the delete names each key, so it reads (and, on
	// MySQL, locks) the purged transactions' rows only, not those of the
	// transactions created at the same times and still running.
	var pairs strings.Builder
	for i := range gids {
		if i > 0 {
			pairs.WriteString(" OR ")
		}
		fmt.Fprintf(&pairs, "(tx_created = $%d AND gid = $%d)", 2*i+1, 2*i+2)
	}
	for _, table := range []string{"dtx_branch", "dtx_event"} {
		if _, err := s.execTx(ctx, tx, `DELETE FROM `+table+` WHERE (`+pairs.String()+`)
			AND NOT EXISTS (SELECT 1 FROM dtx_tx t WHERE t.gid = `+table+`.gid)`, keys); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return int(n), nil
}

// dollarList returns "$from, $from+1, …" with n placeholders.
func dollarList(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// execTx runs stmt ($N placeholders) in tx.
func (s *Store) execTx(ctx context.Context, tx *sql.Tx, stmt string, args []any) (sql.Result, error) {
	q, args := s.d.Bind(stmt, args)
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	return res, nil
}
