package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
)

var _ dtx.Store = (*Store)(nil)

// Config tunes a Store.
type Config struct {
	// MaxBatch bounds how many queued writes share one commit (default 256).
	MaxBatch int
	// Writers overrides Dialect.Writers (default: the dialect's, at least 1).
	Writers int
}

// Store is a dtx.Store on a *sql.DB.
type Store struct {
	db    *sql.DB
	d     Dialect
	cfg   Config
	stmts *stmts
	// shapes caches the statement texts of one-statement batches by
	// batchShape (onestatement.go); nShapes counts them.
	shapes  sync.Map
	nShapes atomic.Int64
	// Group commit (submit): pending writes wait for a committer; at
	// most cfg.Writers committers run at once. wg counts them for Close.
	mu      sync.Mutex
	pending []*write
	spare   []*write // the next pending, reused (pending and spare swap)
	active  int
	closed  bool
	wg      sync.WaitGroup
}

// write is one queued Create or Apply.
type write struct {
	ctx    context.Context
	create *createReq
	update *dtx.Update
	done   chan error
}

type createReq struct {
	tx       *dtx.Tx
	branches []dtx.Branch
}

// Open wraps db (already migrated, see Migrate), prepares the writer's
// statements and starts the group-commit writers. Close stops them and
// closes db.
func Open(ctx context.Context, db *sql.DB, d Dialect, cfg Config) (*Store, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.Writers <= 0 {
		cfg.Writers = max(d.Writers, 1)
	}
	s := &Store{db: db, d: d, cfg: cfg}
	if !d.OneStatement {
		st, err := prepare(ctx, db, d)
		if err != nil {
			return nil, err
		}
		s.stmts = st
	}
	return s, nil
}

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

// Close waits for the writes already submitted to be committed, then
// closes the DB. Writes submitted after Close fail with dtx.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	if s.stmts != nil {
		s.stmts.close()
	}
	return s.db.Close()
}

// submit commits w, sharing the commit with the writes submitted at the
// same time (group commit). There is no writer goroutine: when fewer than
// cfg.Writers commits are running, the caller commits itself, taking every
// pending write (up to MaxBatch) with its own; otherwise its write waits
// for the committer running now, which takes the pending writes once its
// batch is done. A caller that committed and finds writes still pending
// leaves them to a goroutine of their own, so no caller waits for more
// than the commits that its own write needed. Without load a write costs
// no hand-off between goroutines; under load the batches form as before.
func (s *Store) submit(ctx context.Context, w *write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.ctx = ctx
	w.done = make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return dtx.ErrClosed
	}
	s.pending = append(s.pending, w)
	if s.active >= s.cfg.Writers {
		s.mu.Unlock()
		// Once pending the write is not abandoned: waiting for it keeps
		// the caller's view consistent with what was committed.
		return <-w.done
	}
	s.active++
	s.wg.Add(1)
	s.mu.Unlock()
	s.drain(w)
	return <-w.done
}

// drain commits pending writes, a batch at a time, until own has been
// committed (nil: until none is pending). It is one of the cfg.Writers
// committers: it stops being one when nothing is pending, or hands the
// pending writes to a new goroutine once own is done.
func (s *Store) drain(own *write) {
	batch := make([]*write, 0, 8)
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.active--
			s.mu.Unlock()
			s.wg.Done()
			return
		}
		if own != nil && len(own.done) > 0 {
			// Our write is committed and others are pending: they get a
			// committer of their own, still counted in active.
			s.mu.Unlock()
			go s.drain(nil)
			return
		}
		n := min(len(s.pending), s.cfg.MaxBatch)
		batch = append(batch[:0], s.pending[:n]...)
		if n == len(s.pending) {
			// Swap in the spare slice, so the next writes do not grow a
			// new one.
			clear(s.pending)
			s.pending, s.spare = s.spare[:0], s.pending[:0]
		} else {
			rest := copy(s.pending, s.pending[n:])
			clear(s.pending[rest:])
			s.pending = s.pending[:rest]
		}
		s.mu.Unlock()
		s.commit(batch)
		clear(batch)
	}
}

// Create implements dtx.TxLog.
func (s *Store) Create(ctx context.Context, tx *dtx.Tx, branches []dtx.Branch) error {
	return s.submit(ctx, &write{create: &createReq{tx: tx, branches: branches}})
}

// Apply implements dtx.TxLog.
func (s *Store) Apply(ctx context.Context, u dtx.Update) error {
	return s.submit(ctx, &write{update: &u})
}

// commit writes a batch in one transaction. Per-write outcomes that change
// nothing (ErrExists, ErrLeaseLost) do not abort the batch. If the batch
// fails as a whole, each write is retried alone so one bad write cannot fail
// its neighbours.
func (s *Store) commit(batch []*write) {
	commitFn := s.commitBatch
	if s.d.OneStatement {
		commitFn = s.commitOneStatement
	}
	results, err := s.commitAgainAfterDeadlock(commitFn, batch)
	if err == nil {
		for i, w := range batch {
			w.done <- results[i]
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, w := range batch {
		res, err := s.commitAgainAfterDeadlock(commitFn, []*write{w})
		if err == nil {
			err = res[0]
		}
		w.done <- err
	}
}

// deadlockRetries bounds how often a batch is run again after the
// database chose it as a deadlock's victim.
const deadlockRetries = 5

// commitAgainAfterDeadlock runs commitFn on batch, and again when the
// database broke a deadlock by rolling the batch back (Dialect.IsDeadlock:
// nothing of it was written). Two committers can deadlock on MySQL: a
// duplicate creation's key check holds a shared lock on the row that a
// concurrent update waits to lock exclusively, and the reverse.
func (s *Store) commitAgainAfterDeadlock(commitFn func([]*write) ([]error, error), batch []*write) ([]error, error) {
	for try := 0; ; try++ {
		results, err := commitFn(batch)
		if err == nil || try == deadlockRetries || s.d.IsDeadlock == nil || !s.d.IsDeadlock(err) {
			return results, err
		}
	}
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// truncate cuts s to at most n bytes of valid UTF-8 (invalid bytes become
// U+FFFD first), so that PostgreSQL and MySQL (utf8mb4, strict mode) accept
// it: error texts from participants can be arbitrary bytes.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// query, queryRow and exec run a statement written with $N placeholders on
// the store's database, rewritten for the dialect.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q, args = s.d.Bind(q, args)
	return s.db.QueryContext(ctx, q, args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q, args = s.d.Bind(q, args)
	return s.db.QueryRowContext(ctx, q, args...)
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q, args = s.d.Bind(q, args)
	return s.db.ExecContext(ctx, q, args...)
}

const txColumns = `gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until`

// listColumns are txColumns with an empty string for the spec: lists are read
// often, and a spec can be megabytes.
const listColumns = `gid, pattern, status, reason, '', digest, created_at, updated_at, deadline, lease_owner, lease_until`

func scanTx(row interface{ Scan(...any) error }) (*dtx.Tx, error) {
	var t dtx.Tx
	var pattern, status, spec string
	var created, updated, deadline, leaseUntil int64
	if err := row.Scan(&t.GID, &pattern, &status, &t.Reason, &spec, &t.Digest, &created, &updated, &deadline, &t.LeaseOwner, &leaseUntil); err != nil {
		return nil, err
	}
	t.Pattern, t.Status = dtx.Pattern(pattern), dtx.Status(status)
	if spec != "" {
		t.Spec = []byte(spec)
	}
	t.CreatedAt, t.UpdatedAt, t.Deadline, t.LeaseUntil = fromMS(created), fromMS(updated), fromMS(deadline), fromMS(leaseUntil)
	return &t, nil
}

// Get implements dtx.TxLog.
func (s *Store) Get(ctx context.Context, gid string) (*dtx.Tx, []dtx.Branch, error) {
	t, err := scanTx(s.queryRow(ctx, `SELECT `+txColumns+` FROM dtx_tx WHERE gid = $1`, gid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, dtx.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get %s: %w", gid, err)
	}
	rows, err := s.query(ctx, `SELECT `+branchColumns+` FROM dtx_branch WHERE tx_created = $1 AND gid = $2 ORDER BY idx`, ms(t.CreatedAt), gid)
	if err != nil {
		return nil, nil, fmt.Errorf("get branches %s: %w", gid, err)
	}
	defer rows.Close()
	var out []dtx.Branch
	for rows.Next() {
		b, err := scanBranch(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("scan branch %s: %w", gid, err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("get branches %s: %w", gid, err)
	}
	return t, out, nil
}

const branchColumns = `gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at`

// branchColumnsOfB are branchColumns of the table aliased b.
var branchColumnsOfB = "b." + strings.ReplaceAll(branchColumns, ", ", ", b.")

func scanBranch(rows *sql.Rows) (dtx.Branch, error) {
	var b dtx.Branch
	var action, comp string
	var updated int64
	if err := rows.Scan(&b.GID, &b.Index, &b.Name, &action, &comp, &b.ActionAttempts, &b.CompensateAttempts, &b.LastError, &updated); err != nil {
		return dtx.Branch{}, err
	}
	b.Action, b.Compensate, b.UpdatedAt = dtx.BranchStatus(action), dtx.BranchStatus(comp), fromMS(updated)
	return b, nil
}

// ofTx selects the rows of dtx_branch or dtx_event that belong to the
// transaction whose gid is $1. Both tables are keyed by their
// transaction's creation time first (tx_created, gid, …), not by gid, so
// that the rows of the transactions in flight, all created lately, share
// the last pages of the b-tree: a commit then touches a few pages whatever
// the shape of the gids in flight, where a key on gid put each
// transaction's rows on a page of its own (on SQLite, a WAL frame each).
// A statement that has only the gid finds the creation time in dtx_tx.
const ofTx = `tx_created = (SELECT created_at FROM dtx_tx WHERE gid = $1) AND gid = $1`

// Events implements dtx.TxLog.
func (s *Store) Events(ctx context.Context, gid string) ([]dtx.Event, error) {
	rows, err := s.query(ctx, `SELECT id, at, branch, op, outcome, detail, duration_us, owner
		FROM dtx_event WHERE `+ofTx+` ORDER BY id`, gid)
	if err != nil {
		return nil, fmt.Errorf("events %s: %w", gid, err)
	}
	defer rows.Close()
	var out []dtx.Event
	for rows.Next() {
		e := dtx.Event{GID: gid}
		var at, dur int64
		var op string
		if err := rows.Scan(&e.Seq, &at, &e.Branch, &op, &e.Outcome, &e.Detail, &dur, &e.Owner); err != nil {
			return nil, fmt.Errorf("scan event %s: %w", gid, err)
		}
		e.At, e.Op, e.Duration = fromMS(at), dtx.Op(op), time.Duration(dur)*time.Microsecond
		out = append(out, e)
	}
	return out, rows.Err()
}

// List implements dtx.TxLog.
func (s *Store) List(ctx context.Context, f dtx.ListFilter) ([]dtx.Tx, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var where []string
	var args []any
	if f.Status != "" {
		args = append(args, string(f.Status))
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	if !f.Before.IsZero() {
		args = append(args, ms(f.Before))
		where = append(where, fmt.Sprintf("created_at < $%d", len(args)))
	}
	if f.Pattern != "" {
		args = append(args, string(f.Pattern))
		where = append(where, fmt.Sprintf("pattern = $%d", len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, ms(f.Since))
		where = append(where, fmt.Sprintf("created_at >= $%d", len(args)))
	}
	if f.GIDContains != "" {
		// A plain substring test, case-sensitive everywhere (LIKE folds
		// ASCII case in SQLite and needs escaping): instr in SQLite and
		// MySQL, strpos in PostgreSQL.
		args = append(args, f.GIDContains)
		fn := "instr"
		if s.d.Name == "postgres" {
			fn = "strpos"
		}
		where = append(where, fmt.Sprintf("%s(gid, $%d) > 0", fn, len(args)))
	}
	q := `SELECT ` + listColumns + ` FROM dtx_tx`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	q += fmt.Sprintf(" ORDER BY created_at DESC, gid DESC LIMIT $%d", len(args))
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	var out []dtx.Tx
	for rows.Next() {
		t, err := scanTx(rows)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// Counts implements dtx.TxLog.
func (s *Store) Counts(ctx context.Context) (map[dtx.Status]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, count(*) FROM dtx_tx GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	defer rows.Close()
	out := map[dtx.Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("counts: %w", err)
		}
		out[dtx.Status(st)] = n
	}
	return out, rows.Err()
}

const unfinished = `status IN ('running', 'compensating')`

// Attention implements dtx.TxLog: one query for the transactions, then one
// for the branches of all of them.
func (s *Store) Attention(ctx context.Context, f dtx.AttentionFilter) ([]dtx.TxDetail, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	minAttempts := int64(f.MinAttempts)
	if minAttempts <= 0 {
		minAttempts = math.MaxInt32 // off
	}
	before := int64(-1) // off: nothing was created before the epoch
	if !f.CreatedBefore.IsZero() {
		before = ms(f.CreatedBefore)
	}
	// The branch test runs per unfinished transaction on the branch
	// table's primary key (tx_created, gid, idx).
	rows, err := s.query(ctx, `SELECT `+txColumns+` FROM dtx_tx WHERE `+unfinished+` AND (created_at < $1
		OR EXISTS (SELECT 1 FROM dtx_branch b WHERE b.tx_created = dtx_tx.created_at AND b.gid = dtx_tx.gid AND
			((dtx_tx.status = 'running' AND b.action = 'pending' AND b.action_attempts >= $2)
			OR (b.compensate = 'pending' AND b.compensate_attempts >= $2))))
		ORDER BY created_at, gid LIMIT $3`, before, minAttempts, limit)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	defer rows.Close()
	var out []dtx.TxDetail
	for rows.Next() {
		t, err := scanTx(rows)
		if err != nil {
			return nil, fmt.Errorf("attention: %w", err)
		}
		out = append(out, dtx.TxDetail{Tx: *t})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	rows.Close()
	if err := s.readBranches(ctx, out); err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	return out, nil
}

// maxIn bounds the gids bound into one IN list (databases limit the
// number of parameters of a statement).
const maxIn = 500

// readBranches fills in the branches of txs, ordered by index.
func (s *Store) readBranches(ctx context.Context, txs []dtx.TxDetail) error {
	at := make(map[string]int, len(txs))
	for i := range txs {
		at[txs[i].GID] = i
	}
	for lo := 0; lo < len(txs); lo += maxIn {
		chunk := txs[lo:min(lo+maxIn, len(txs))]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i].GID
		}
		// Through dtx_tx, so that each transaction's branches are one key
		// lookup (tx_created, gid): two IN lists made the databases try
		// every pair, or scan the table.
		if err := s.scanBranchesInto(ctx, txs, at, `SELECT `+branchColumnsOfB+` FROM dtx_tx t
			JOIN dtx_branch b ON b.tx_created = t.created_at AND b.gid = t.gid
			WHERE t.gid IN (`+dollarList(1, len(chunk))+`) ORDER BY b.gid, b.idx`, args); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanBranchesInto(ctx context.Context, txs []dtx.TxDetail, at map[string]int, q string, args []any) error {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("branches: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		b, err := scanBranch(rows)
		if err != nil {
			return fmt.Errorf("scan branch: %w", err)
		}
		if i, ok := at[b.GID]; ok {
			txs[i].Branches = append(txs[i].Branches, b)
		}
	}
	return rows.Err()
}

// Backlog implements dtx.LeaseStore.
func (s *Store) Backlog(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT count(*) FROM dtx_tx WHERE `+unfinished+` AND lease_until < $1`, ms(now)).Scan(&n); err != nil {
		return 0, fmt.Errorf("backlog: %w", err)
	}
	return n, nil
}

// Claim implements dtx.LeaseStore.
func (s *Store) Claim(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	if s.d.Override.ClaimDue != "" {
		return s.claimLocking(ctx, owner, now, until, limit)
	}
	// The CTE is materialised so the locking subquery runs exactly once
	// (as an IN-subquery PostgreSQL may re-run it, and SKIP LOCKED would then
	// hand out more rows than the limit).
	rows, err := s.db.QueryContext(ctx, `WITH due AS MATERIALIZED (
			SELECT gid FROM dtx_tx WHERE `+unfinished+` AND lease_until < $3
			ORDER BY lease_until LIMIT $4 `+s.d.SkipLocked+`)
		UPDATE dtx_tx SET lease_owner = $1, lease_until = $2 FROM due
		WHERE dtx_tx.gid = due.gid AND `+unfinished+` AND lease_until < $3
		RETURNING dtx_tx.gid`, owner, ms(until), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		out = append(out, gid)
	}
	return out, rows.Err()
}

// ClaimOne implements dtx.LeaseStore.
func (s *Store) ClaimOne(ctx context.Context, owner, gid string, now, until time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE dtx_tx SET lease_owner = $1, lease_until = $2
		WHERE gid = $3 AND `+unfinished+` AND lease_until < $4`, owner, ms(until), gid, ms(now))
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", gid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", gid, err)
	}
	return n == 1, nil
}

// Renew implements dtx.LeaseStore.
func (s *Store) Renew(ctx context.Context, owner string, until time.Time) (int, error) {
	res, err := s.exec(ctx, s.d.stmt(s.d.Override.Renew, `UPDATE dtx_tx SET lease_until = $1 WHERE lease_owner = $2 AND `+unfinished), ms(until), owner)
	if err != nil {
		return 0, fmt.Errorf("renew: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Release implements dtx.LeaseStore.
func (s *Store) Release(ctx context.Context, owner, gid string) error {
	_, err := s.exec(ctx, `UPDATE dtx_tx SET lease_owner = '', lease_until = 0 WHERE gid = $1 AND lease_owner = $2`, gid, owner)
	if err != nil {
		return fmt.Errorf("release %s: %w", gid, err)
	}
	return nil
}

// claimLocking is Claim for dialects with Override.ClaimDue: one
// transaction that selects and locks the due rows (skipping rows other
// claimers hold) and then leases exactly those.
func (s *Store) claimLocking(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer tx.Rollback()
	q, args := s.d.Bind(s.d.Override.ClaimDue, []any{ms(now), limit})
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	var gids []string
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim: %w", err)
		}
		gids = append(gids, gid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(gids) == 0 {
		return nil, nil
	}
	args = []any{owner, ms(until)}
	marks := make([]string, len(gids))
	for i, g := range gids {
		args = append(args, g)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	q, args = s.d.Bind(`UPDATE dtx_tx SET lease_owner = $1, lease_until = $2 WHERE gid IN (`+strings.Join(marks, ", ")+`)`, args)
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return gids, nil
}
