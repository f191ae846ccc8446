package xa

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/backoff"
	"github.com/dtxhq/dtx/participant"
)

// Confirm commits the prepared branch br. It is idempotent: a branch that is
// already committed returns nil. A branch that was never prepared (or was
// cancelled) is a permanent error: the coordinator only confirms after a
// successful try. Any other failure is retryable.
func (b Branches) Confirm(ctx context.Context, db *sql.DB, br participant.Branch) error {
	if _, err := b.dialect(); err != nil {
		return err
	}
	xid := XID(br)
	stmt := `COMMIT PREPARED '` + xid + `'`
	if b.Dialect == appdb.MySQL {
		stmt = `XA COMMIT '` + xid + `'`
	}
	return b.finish(ctx, db, br, xid, stmt, true)
}

// finish runs stmt (a commit or rollback of the prepared xid). If it fails
// because xid is not (or no longer) prepared, it returns nil; if xid is
// still prepared it retries briefly (on MariaDB the session that prepared
// the branch may still be disconnecting), then returns a retryable error.
// For a commit, a branch that is not prepared must have committed.
func (b Branches) finish(ctx context.Context, db *sql.DB, br participant.Branch, xid, stmt string, commit bool) error {
	deadline := time.Now().Add(2 * time.Second)
	for attempt := 1; ; attempt++ {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil {
			return nil
		}
		ok, perr := b.prepared(ctx, db, xid)
		switch {
		case perr != nil:
			return fmt.Errorf("xa: %s: %w", stmt, err)
		case !ok && !commit:
			return nil
		case !ok:
			return b.committed(ctx, db, br, xid, err)
		case time.Now().After(deadline) || ctx.Err() != nil:
			return fmt.Errorf("xa: %s: %w", stmt, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("xa: %s: %w", stmt, err)
		case <-time.After(backoff.Delay(10*time.Millisecond, 200*time.Millisecond, attempt)):
		}
	}
}

// committed tells a committed branch (its try barrier row is visible) from
// one that never prepared.
func (b Branches) committed(ctx context.Context, db *sql.DB, br participant.Branch, xid string, cause error) error {
	t, err := b.table()
	if err != nil {
		return err
	}
	var origin string
	err = db.QueryRowContext(ctx, b.sql(t, `SELECT origin FROM {table} WHERE gid = ? AND branch = ? AND op = ?`),
		br.GID, br.Index, string(dtx.OpTry)).Scan(&origin)
	switch {
	case err == nil && origin == string(dtx.OpTry):
		return nil // already committed
	case err == nil:
		return dtx.Permanentf("xa: confirm %s: the branch was cancelled", xid)
	case errors.Is(err, sql.ErrNoRows):
		return dtx.Permanentf("xa: confirm %s: no such prepared branch (%v)", xid, cause)
	}
	return fmt.Errorf("xa: confirm %s: %w", xid, err)
}

// Cancel rolls the prepared branch br back and records the cancel in the
// barrier table. If the branch was never prepared, it records the
// null-cancel marker, so that a late Try does nothing (ErrHanging). If a try
// of br is still running, Cancel returns an error wrapping ErrBusy after a
// short wait (about 200ms on PostgreSQL, 1s on MySQL) instead of blocking.
// Cancelling a branch that was already committed is a permanent error.
func (b Branches) Cancel(ctx context.Context, db *sql.DB, br participant.Branch) error {
	if _, err := b.dialect(); err != nil {
		return err
	}
	br.Op = dtx.OpCancel
	xid := XID(br)
	ok, err := b.prepared(ctx, db, xid)
	if err != nil {
		return err
	}
	if ok {
		stmt := `ROLLBACK PREPARED '` + xid + `'`
		if b.Dialect == appdb.MySQL {
			stmt = `XA ROLLBACK '` + xid + `'`
		}
		if err := b.finish(ctx, db, br, xid, stmt, false); err != nil {
			return err
		}
	}
	// The try row, if the try had prepared, is gone now: record the cancel
	// and the marker that bars the try.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("xa: connection: %w", err)
	}
	reset := ""
	if b.Dialect == appdb.MySQL {
		old, err := shortLockWait(ctx, conn)
		if err != nil {
			discard(conn)
			return err
		}
		reset = `SET SESSION innodb_lock_wait_timeout = ` + strconv.FormatInt(old, 10)
	}
	err = b.cancelBarrier(ctx, conn, br, xid)
	if reset != "" {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), reset); rerr != nil {
			discard(conn)
			return err
		}
	}
	conn.Close()
	return err
}

func (b Branches) cancelBarrier(ctx context.Context, conn *sql.Conn, br participant.Branch, xid string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("xa: begin: %w", err)
	}
	defer tx.Rollback()
	if b.Dialect == appdb.Postgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+pgLockWait+`'`); err != nil {
			return fmt.Errorf("xa: begin: %w", err)
		}
	}
	run, err := b.barrier().Enter(ctx, txExecer{tx}, br)
	if err != nil {
		return busy(err)
	}
	if run {
		// The try's barrier row is committed and no longer prepared: the
		// branch was confirmed and cannot be undone.
		return dtx.Permanentf("xa: cancel %s: the branch is already committed", xid)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("xa: commit: %w", err)
	}
	return nil
}
