package xa

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

// rememberXID records the gid and branch of a hashed XID, outside of any
// transaction, so that InDoubt can name the branch.
func (b Branches) rememberXID(ctx context.Context, db *sql.DB, xid string, br participant.Branch) error {
	d, err := b.dialect()
	if err != nil {
		return err
	}
	t, err := b.table()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, b.sql(t, d.rememberXID), xid, br.GID, br.Index); err != nil {
		return fmt.Errorf("xa: record xid: %w", err)
	}
	return nil
}

// Try runs fn in a transaction on a dedicated connection of db, together
// with the barrier row of (gid, branch, "try"), and prepares that
// transaction under XID(br). fn must use conn only, and must not commit,
// roll back or end the transaction.
//
// A duplicate try (the branch is already prepared, or committed) returns nil
// without calling fn; a try after the branch's cancel returns
// participant.ErrHanging. A try that meets a try of the same branch in
// progress returns an error wrapping ErrBusy. An error from fn rolls
// everything back and is returned unchanged.
func (b Branches) Try(ctx context.Context, db *sql.DB, br participant.Branch, fn func(ctx context.Context, conn *sql.Conn) error) error {
	if _, err := b.dialect(); err != nil {
		return err
	}
	br.Op = dtx.OpTry
	xid := XID(br)
	if b.Dialect != appdb.Postgres { // PostgreSQL asks inside its transaction (tryPostgres)
		if ok, err := b.prepared(ctx, db, xid); err != nil {
			return err
		} else if ok {
			return nil // duplicate: already prepared
		}
	}
	// On MySQL every XID is recorded: XA RECOVER lists the whole server's
	// branches, and the table tells this database's apart.
	if strings.HasPrefix(xid, hashPrefix) || b.Dialect == appdb.MySQL {
		if err := b.rememberXID(ctx, db, xid, br); err != nil {
			return err
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("xa: connection: %w", err)
	}
	if b.Dialect == appdb.Postgres {
		return b.tryPostgres(ctx, conn, xid, br, fn)
	}
	return b.tryMySQL(ctx, conn, xid, br, fn)
}

func (b Branches) tryPostgres(ctx context.Context, conn *sql.Conn, xid string, br participant.Branch, fn func(ctx context.Context, conn *sql.Conn) error) (err error) {
	open := false
	defer func() {
		if open {
			// Rollback on a fresh context: ctx may be what failed.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, rerr := conn.ExecContext(rctx, `ROLLBACK`); rerr != nil {
				discard(conn)
				return
			}
		}
		conn.Close()
	}()
	open = true // from here on, the deferred ROLLBACK ends whatever was begun
	run, err := b.beginPostgres(ctx, conn, xid, br)
	if err != nil || !run {
		return busy(err) // !run: a duplicate (the deferred ROLLBACK ends ours)
	}
	if err := fn(ctx, conn); err != nil {
		return err
	}
	// PREPARE TRANSACTION ends the transaction block, whatever happens:
	// on error (or in an aborted transaction) it rolls back.
	open = false
	ok, err := b.preparePostgres(ctx, conn, xid)
	if err != nil {
		return fmt.Errorf("xa: prepare %s: %w", xid, err)
	}
	if !ok {
		return fmt.Errorf("xa: prepare %s: the transaction was aborted and has been rolled back", xid)
	}
	return nil
}

// beginPostgres begins the try's transaction, bounds the wait for the
// branch's barrier row (a try of the same branch in progress holds it) and
// writes the row, restoring the session's lock_timeout for fn. run is false
// for a duplicate try: the branch is already prepared (its barrier row is
// locked by the prepared transaction, so waiting for it would only time out),
// or committed. A try after the branch's cancel returns
// participant.ErrHanging.
//
// The four statements keep the old lock_timeout in a transaction-local
// setting, so none needs an answer before the next is sent: through pgx they
// go in one pipeline, one round trip; with another driver they take four.
func (b Branches) beginPostgres(ctx context.Context, conn *sql.Conn, xid string, br participant.Branch) (run bool, err error) {
	t, err := b.table()
	if err != nil {
		return false, err
	}
	var (
		begin = `BEGIN`
		bound = `SELECT set_config('dtx.lock_timeout', current_setting('lock_timeout'), true),
			set_config('lock_timeout', '` + pgLockWait + `', true)`
		// The duplicate check and the insert share a statement: a prepared
		// branch's row is not waited for.
		enter = b.Dialect.Expand(t, `WITH dup AS MATERIALIZED (
				SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()) AS d),
			ins AS (INSERT INTO {table} (gid, branch, op, origin)
				SELECT $2::text, $3::integer, 'try', 'try' WHERE NOT (SELECT d FROM dup)
				ON CONFLICT DO NOTHING RETURNING 1)
			SELECT (SELECT d FROM dup), EXISTS (SELECT 1 FROM ins)`)
		restore = `SELECT set_config('lock_timeout', current_setting('dtx.lock_timeout'), true)`
		args    = []any{xid, br.GID, br.Index}
	)
	var dup, inserted bool
	viaPgx, err := withPgx(conn, func(pc *pgx.Conn) error {
		var batch pgx.Batch
		batch.Queue(begin)
		batch.Queue(bound)
		batch.Queue(enter, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&dup, &inserted) })
		batch.Queue(restore)
		return pc.SendBatch(ctx, &batch).Close() // reads every result; the first error
	})
	if err == nil && !viaPgx {
		for _, q := range []string{begin, bound, enter, restore} {
			if q == enter {
				err = conn.QueryRowContext(ctx, q, args...).Scan(&dup, &inserted)
			} else {
				_, err = conn.ExecContext(ctx, q)
			}
			if err != nil {
				break
			}
		}
	}
	switch {
	case err != nil:
		return false, fmt.Errorf("xa: begin: %w", err)
	case dup:
		return false, nil
	case inserted:
		return true, nil
	}
	// The row was there: Enter tells a committed try (a duplicate) from a
	// cancel's marker (ErrHanging).
	return b.barrier().Enter(ctx, txExecer{conn}, br)
}

// withPgx runs fn on conn's pgx connection, if conn is one (pgx's
// database/sql driver), and reports whether it was.
func withPgx(conn *sql.Conn, fn func(pc *pgx.Conn) error) (viaPgx bool, err error) {
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return nil
		}
		viaPgx = true
		return fn(pc.Conn())
	})
	return viaPgx, err
}

// preparePostgres runs PREPARE TRANSACTION xid and reports whether it
// prepared: in a transaction that fn left aborted it rolls back without an
// error. Through pgx the command tag tells ("ROLLBACK" instead of "PREPARE
// TRANSACTION"); with another driver the database is asked.
func (b Branches) preparePostgres(ctx context.Context, conn *sql.Conn, xid string) (bool, error) {
	stmt := `PREPARE TRANSACTION '` + xid + `'`
	ok := false
	viaPgx, err := withPgx(conn, func(pc *pgx.Conn) error {
		tag, err := pc.Exec(ctx, stmt)
		ok = err == nil && tag.String() == "PREPARE TRANSACTION"
		return err
	})
	if viaPgx || err != nil {
		return ok, err
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		return false, err
	}
	return b.prepared(ctx, conn, xid)
}

func (b Branches) tryMySQL(ctx context.Context, conn *sql.Conn, xid string, br participant.Branch, fn func(ctx context.Context, conn *sql.Conn) error) (err error) {
	// The session ends in every case: after XA PREPARE it cannot run
	// anything else, and the prepared branch outlives the disconnection.
	// Before that, disconnecting rolls the XA transaction back; an explicit
	// rollback just makes that immediate.
	started, ended := false, false
	defer func() {
		if started && err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if !ended {
				_, _ = conn.ExecContext(rctx, `XA END '`+xid+`'`)
			}
			_, _ = conn.ExecContext(rctx, `XA ROLLBACK '`+xid+`'`)
		}
		discard(conn)
		if err == errDuplicate {
			err = nil
		}
	}()
	old, err := shortLockWait(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `XA START '`+xid+`'`); err != nil {
		if xidInUse(err) {
			// Another session holds the XID: a try of the same branch in
			// progress, or one that prepared since the check above.
			return fmt.Errorf("%w (XA START %s: %v)", ErrBusy, xid, err)
		}
		return fmt.Errorf("xa: XA START %s: %w", xid, err)
	}
	started = true
	run, err := b.barrier().Enter(ctx, txExecer{conn}, br)
	if err != nil {
		return busy(err)
	}
	if !run {
		// Duplicate of a committed try: nothing to do. The sentinel makes
		// the deferred function roll back, then return nil.
		return errDuplicate
	}
	if _, err := conn.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = `+strconv.FormatInt(old, 10)); err != nil {
		return fmt.Errorf("xa: session: %w", err)
	}
	if err := fn(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `XA END '`+xid+`'`); err != nil {
		return fmt.Errorf("xa: XA END %s: %w", xid, err)
	}
	ended = true
	if _, err := conn.ExecContext(ctx, `XA PREPARE '`+xid+`'`); err != nil {
		return fmt.Errorf("xa: XA PREPARE %s: %w", xid, err)
	}
	return nil
}

var errDuplicate = errors.New("xa: duplicate try")

// shortLockWait sets the MySQL session's lock wait timeout to mysqlLockWait
// and returns the previous value.
func shortLockWait(ctx context.Context, conn *sql.Conn) (int64, error) {
	var old int64
	if err := conn.QueryRowContext(ctx, `SELECT @@SESSION.innodb_lock_wait_timeout`).Scan(&old); err != nil {
		return 0, fmt.Errorf("xa: session: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = `+strconv.Itoa(mysqlLockWait)); err != nil {
		return 0, fmt.Errorf("xa: session: %w", err)
	}
	return old, nil
}
