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
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		return fmt.Errorf("xa: begin: %w", err)
	}
	open = true
	// In one round trip: bound the wait for the barrier row only, not fn
	// (the session's value is kept to be restored), and ask whether the
	// branch is already prepared (a duplicate try: its barrier row is
	// locked by the prepared transaction, so Enter would only time out).
	// The materialized CTE reads the old value before set_config runs.
	var old string
	var dup bool
	if err := conn.QueryRowContext(ctx, `WITH o AS MATERIALIZED (SELECT current_setting('lock_timeout') AS v)
		SELECT o.v, set_config('lock_timeout', '`+pgLockWait+`', true) <> '',
			EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database())
		FROM o`, xid).Scan(&old, new(bool), &dup); err != nil {
		return fmt.Errorf("xa: begin: %w", err)
	}
	if dup {
		return nil // duplicate: already prepared (the deferred ROLLBACK ends ours)
	}
	run, err := b.barrier().Enter(ctx, txExecer{conn}, br)
	if err != nil || !run {
		return busy(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, old); err != nil {
		return fmt.Errorf("xa: begin: %w", err)
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

// preparePostgres runs PREPARE TRANSACTION xid and reports whether it
// prepared: in a transaction that fn left aborted it rolls back without an
// error. Through pgx the command tag tells ("ROLLBACK" instead of "PREPARE
// TRANSACTION"); with another driver the database is asked.
func (b Branches) preparePostgres(ctx context.Context, conn *sql.Conn, xid string) (bool, error) {
	stmt := `PREPARE TRANSACTION '` + xid + `'`
	viaPgx, ok := false, false
	err := conn.Raw(func(dc any) error {
		pc, isPgx := dc.(interface{ Conn() *pgx.Conn })
		if !isPgx {
			return nil
		}
		viaPgx = true
		tag, err := pc.Conn().Exec(ctx, stmt)
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
