// Package shopxa gives the inventory and payment services their XA (two-phase
// commit) endpoints, and the resolver that finishes what a failed
// coordinator or a lost call left behind: XA branches left prepared, and
// TCC reservations left RESERVED by a transaction that was cancelled.
//
// A prepare runs the service's ordinary local work (a deduction, a charge)
// as an XA branch of its database through package participant/xa: prepared,
// it holds its locks and stays invisible until the coordinator commits it
// (confirm) or rolls it back (cancel).
package shopxa

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/xa"
)

// Querier is what a branch's work needs from its connection (*sql.Conn and
// *sql.Tx both have it).
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// LockTimeout bounds how long a prepare waits for a row lock on PostgreSQL
// (MySQL counts whole seconds: there it is 1s).
// A prepared branch keeps its locks until the coordinator commits or rolls
// it back, so a busy row can stay locked for a whole transaction; rather
// than hold a connection (and overrun the branch timeout) the prepare gives
// up quickly with a retryable error, and the coordinator tries again after
// its backoff. That cannot deadlock: XA transactions prepare in participant
// order, and each branch locks its rows in key order.
const LockTimeout = 250 * time.Millisecond

// Endpoints are a service's XA endpoints over one database.
type Endpoints struct {
	// Service names the service in errors ("inventory").
	Service string
	DB      *sql.DB
	// Dialect of DB: XA needs appdb.Postgres or appdb.MySQL.
	Dialect appdb.Dialect
	// Table is the barrier table (its "_xid" companion is created too).
	Table string
}

// Supported reports whether the database can run XA branches.
func (e *Endpoints) Supported() bool { return Supports(e.Dialect) }

// Supports reports whether databases of dialect d can run XA branches.
func Supports(d appdb.Dialect) bool {
	return d == appdb.Postgres || d == appdb.MySQL
}

// InDoubt lists the branches left prepared in the database.
func (e *Endpoints) InDoubt(ctx context.Context) ([]participant.Branch, error) {
	return e.branches().InDoubt(ctx, e.DB)
}

func (e *Endpoints) branches() xa.Branches {
	return xa.Branches{Dialect: e.Dialect, Barrier: participant.Barrier{Table: e.Table}}
}

// Migrate creates the XA tables; on an unsupported database it does nothing.
func (e *Endpoints) Migrate(ctx context.Context) error {
	if !e.Supported() {
		return nil
	}
	return e.branches().Migrate(ctx, e.DB)
}

func (e *Endpoints) check(br participant.Branch, op dtx.Op) error {
	if !e.Supported() {
		return dtx.Permanentf("%s: XA needs a PostgreSQL or MySQL database; this service runs on %v", e.Service, e.Dialect)
	}
	if br.Op != op {
		return dtx.Permanentf("%s: this endpoint takes Dtx-Op %q, not %q", e.Service, op, br.Op)
	}
	return nil
}

// Prepare runs work as the XA branch br and prepares it. A late prepare
// after its rollback (hanging) is a definite failure; a lock wait longer
// than LockTimeout is retryable.
func (e *Endpoints) Prepare(ctx context.Context, br participant.Branch, work func(ctx context.Context, q Querier) error) error {
	if err := e.check(br, dtx.OpTry); err != nil {
		return err
	}
	err := e.branches().Try(ctx, e.DB, br, func(ctx context.Context, conn *sql.Conn) error {
		switch e.Dialect {
		case appdb.Postgres:
			if _, err := conn.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, LockTimeout.Milliseconds())); err != nil {
				return err
			}
		case appdb.MySQL:
			// Whole seconds only; the session ends with the branch.
			if _, err := conn.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = 1`); err != nil {
				return err
			}
		}
		return work(ctx, conn)
	})
	switch {
	case errors.Is(err, participant.ErrHanging):
		return dtx.Permanentf("%s: prepare of %s after its rollback: refused", e.Service, xa.XID(br))
	case lockTimeout(err):
		return fmt.Errorf("%s: prepare of %s: rows locked by another transaction for more than %s; retry later: %w",
			e.Service, xa.XID(br), LockTimeout, err)
	}
	return err
}

// lockTimeout reports PostgreSQL's lock_not_available (55P03) and MySQL's
// lock wait timeout (1205).
func lockTimeout(err error) bool {
	if err == nil {
		return false
	}
	var code interface{ SQLState() string }
	if errors.As(err, &code) && code.SQLState() == "55P03" {
		return true
	}
	var my *mysql.MySQLError
	return errors.As(err, &my) && my.Number == 1205
}

// Commit commits the branch br prepared (confirm).
func (e *Endpoints) Commit(ctx context.Context, br participant.Branch) error {
	if err := e.check(br, dtx.OpConfirm); err != nil {
		return err
	}
	return e.branches().Confirm(ctx, e.DB, br)
}

// Rollback rolls the branch br back (cancel); with no prepared branch it
// bars a late prepare.
func (e *Endpoints) Rollback(ctx context.Context, br participant.Branch) error {
	if err := e.check(br, dtx.OpCancel); err != nil {
		return err
	}
	return e.branches().Cancel(ctx, e.DB, br)
}

// StatusSource tells a global transaction's state: the coordinator's
// durable log (*client.Client implements it). A gid it does not know fails
// with an error wrapping dtx.ErrNotFound.
type StatusSource interface {
	Get(ctx context.Context, gid string) (*dtx.TxDetail, error)
}

// Decide is the resolver's rule for an in-doubt branch, from the durable
// log: a succeeded transaction commits it; a failed or compensating one
// rolls it back; an unknown gid (presumed abort: the coordinator records a
// transaction before it prepares anything) rolls it back; anything else
// (still running) is left to the coordinator.
func Decide(ctx context.Context, src StatusSource, gid string) (xa.Decision, error) {
	d, err := src.Get(ctx, gid)
	switch {
	case errors.Is(err, dtx.ErrNotFound):
		return xa.Rollback, nil
	case err != nil:
		return xa.Unknown, err
	}
	switch d.Status {
	case dtx.StatusSucceeded:
		return xa.Commit, nil
	case dtx.StatusFailed, dtx.StatusCompensating:
		return xa.Rollback, nil
	}
	return xa.Unknown, nil
}

// Stats counts what a Resolver did.
type Stats struct {
	Sweeps     int64 `json:"sweeps"`
	InDoubt    int64 `json:"in_doubt"` // prepared branches seen by the last sweep
	Committed  int64 `json:"committed"`
	RolledBack int64 `json:"rolled_back"`
	// StaleReserved counts the RESERVED transactions seen by the last
	// sweep older than MinAge; ReservationsCancelled those it cancelled.
	StaleReserved         int64 `json:"stale_reserved"`
	ReservationsCancelled int64 `json:"reservations_cancelled"`
	Errors                int64 `json:"errors"`
}

// Resolver periodically finishes the service's prepared branches whose
// global transaction has ended (or that the coordinator does not know), in
// the direction the coordinator's log says, and cancels the TCC
// reservations of transactions that failed (the seeds' "reserved-state
// scheduler"). The coordinator finishes both itself when it runs; the
// resolver covers a coordinator that is slow, down, or lost the
// transaction. It never confirms a reservation: confirming is the
// coordinator's decision alone.
type Resolver struct {
	Endpoints *Endpoints
	Source    StatusSource
	// Reserved, if set, lists the gids of transactions holding RESERVED
	// reservations created before the given time; CancelReserved cancels
	// the reservations of one gid (idempotently).
	Reserved       func(ctx context.Context, before time.Time) ([]string, error)
	CancelReserved func(ctx context.Context, gid string) error
	// Interval between sweeps (default 5s); MinAge is how long a branch must
	// have been seen prepared before it is resolved (default 2*Interval), so
	// the coordinator gets the first chance.
	Interval, MinAge time.Duration
	Logger           *slog.Logger
	// Now, if set, is the clock that ages branches and reservations
	// (default time.Now); tests move it instead of waiting.
	Now func() time.Time

	mu    sync.Mutex
	first map[string]time.Time // xid -> first seen prepared

	sweeps, inDoubt, committed, rolledBack, errs atomic.Int64
	staleReserved, cancelledReserved             atomic.Int64
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	return Stats{Sweeps: r.sweeps.Load(), InDoubt: r.inDoubt.Load(), Committed: r.committed.Load(),
		RolledBack: r.rolledBack.Load(), StaleReserved: r.staleReserved.Load(),
		ReservationsCancelled: r.cancelledReserved.Load(), Errors: r.errs.Load()}
}

func (r *Resolver) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return 5 * time.Second
}

// Run sweeps every Interval until ctx is done.
func (r *Resolver) Run(ctx context.Context) {
	if !r.Endpoints.Supported() && r.Reserved == nil {
		return
	}
	t := time.NewTicker(r.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.logger().WarnContext(ctx, "xa resolver sweep", "service", r.Endpoints.Service, "err", err)
			}
		}
	}
}

func (r *Resolver) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) minAge() time.Duration {
	if r.MinAge > 0 {
		return r.MinAge
	}
	return 2 * r.interval()
}

// Sweep resolves once, and returns how many XA branches and reserved
// transactions it finished.
func (r *Resolver) Sweep(ctx context.Context) (int, error) {
	r.sweeps.Add(1)
	var n int
	var errs []error
	if r.Endpoints.Supported() {
		k, err := r.sweepXA(ctx)
		n += k
		errs = append(errs, err)
	}
	if r.Reserved != nil {
		k, err := r.sweepReserved(ctx)
		n += k
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// sweepReserved cancels the reservations of failed (or unknown)
// transactions older than MinAge; others are left to the coordinator.
func (r *Resolver) sweepReserved(ctx context.Context) (int, error) {
	gids, err := r.Reserved(ctx, r.now().Add(-r.minAge()))
	if err != nil {
		r.errs.Add(1)
		return 0, err
	}
	r.staleReserved.Store(int64(len(gids)))
	n := 0
	var errs []error
	for _, gid := range gids {
		dec, err := Decide(ctx, r.Source, gid)
		if err == nil && dec == xa.Rollback {
			err = r.CancelReserved(ctx, gid)
			if err == nil {
				n++
				r.cancelledReserved.Add(1)
				r.logger().InfoContext(ctx, "stale reservation cancelled", "service", r.Endpoints.Service, "gid", gid)
			}
		}
		if err != nil {
			r.errs.Add(1)
			errs = append(errs, fmt.Errorf("reservations of %s: %w", gid, err))
		}
	}
	return n, errors.Join(errs...)
}

func (r *Resolver) sweepXA(ctx context.Context) (int, error) {
	minAge := r.minAge()
	b := r.Endpoints.branches()
	brs, err := r.Endpoints.InDoubt(ctx)
	if err != nil {
		r.errs.Add(1)
		return 0, err
	}
	r.inDoubt.Store(int64(len(brs)))
	now := r.now()
	r.mu.Lock()
	seen := make(map[string]time.Time, len(brs))
	for _, br := range brs {
		x := xa.XID(br)
		at, ok := r.first[x]
		if !ok {
			at = now
		}
		seen[x] = at
	}
	r.first = seen
	r.mu.Unlock()

	n := 0
	var errs []error
	for _, br := range brs {
		if now.Sub(seen[xa.XID(br)]) < minAge {
			continue
		}
		dec, err := Decide(ctx, r.Source, br.GID)
		switch {
		case err != nil:
		case dec == xa.Commit:
			if err = b.Confirm(ctx, r.Endpoints.DB, br); err == nil {
				r.committed.Add(1)
			}
		case dec == xa.Rollback:
			if err = b.Cancel(ctx, r.Endpoints.DB, br); err == nil {
				r.rolledBack.Add(1)
			}
		default:
			continue
		}
		if err != nil {
			r.errs.Add(1)
			errs = append(errs, fmt.Errorf("resolve %s: %w", xa.XID(br), err))
			continue
		}
		n++
		r.logger().InfoContext(ctx, "xa branch resolved", "service", r.Endpoints.Service, "xid", xa.XID(br), "decision", dec.String())
	}
	return n, errors.Join(errs...)
}

// StaleReserved returns Resolver.Reserved for a table with columns gid,
// status and created_at (Unix milliseconds), such as the inventory's
// reservations and the payment's payments.
func StaleReserved(db *sql.DB, table string) func(ctx context.Context, before time.Time) ([]string, error) {
	return func(ctx context.Context, before time.Time) ([]string, error) {
		rows, err := db.QueryContext(ctx,
			`SELECT DISTINCT gid FROM `+table+` WHERE status = 'RESERVED' AND created_at <= $1`, before.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("read stale reservations: %w", err)
		}
		defer rows.Close()
		var gids []string
		for rows.Next() {
			var gid string
			if err := rows.Scan(&gid); err != nil {
				return nil, fmt.Errorf("read stale reservations: %w", err)
			}
			gids = append(gids, gid)
		}
		return gids, rows.Err()
	}
}

// CancelReserved returns Resolver.CancelReserved: in one local
// transaction, it finds the order that gid reserved in table and runs
// cancel for it.
func CancelReserved(db *sql.DB, table string, cancel func(ctx context.Context, tx *sql.Tx, orderID int64) error) func(ctx context.Context, gid string) error {
	return func(ctx context.Context, gid string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var orderID int64
		err = tx.QueryRowContext(ctx, `SELECT order_id FROM `+table+` WHERE gid = $1 AND status = 'RESERVED' LIMIT 1`, gid).Scan(&orderID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // cancelled or confirmed meanwhile
		}
		if err != nil {
			return err
		}
		if err := cancel(ctx, tx, orderID); err != nil {
			return err
		}
		return tx.Commit()
	}
}
