// Package xa runs participant branches as XA (two-phase commit) branches of
// the participant's own database, driven by the TCC protocol (package tcc):
//
//   - try runs the branch's local work and the barrier row of (gid, branch,
//     "try") in one database transaction and prepares it (PostgreSQL
//     PREPARE TRANSACTION, MySQL/MariaDB XA PREPARE): the work holds its
//     locks and stays invisible, but survives a crash of either side;
//   - confirm commits the prepared branch (COMMIT PREPARED / XA COMMIT);
//   - cancel rolls it back (ROLLBACK PREPARED / XA ROLLBACK), or, if the try
//     never ran, records the null-cancel marker so that a late try does
//     nothing and returns participant.ErrHanging.
//
// Branches left prepared by a crash are listed by Branches.InDoubt and
// finished by Branches.Recover.
//
// PostgreSQL needs max_prepared_transactions > 0 (a server restart setting).
// MariaDB needs 10.5 or later, so that a prepared branch survives the
// disconnection of the session that prepared it.
package xa

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/backoff"
	"github.com/dtxhq/dtx/participant"
)

// Decision is how Recover finishes an in-doubt branch.
type Decision int

// Decisions.
const (
	// Unknown leaves the branch prepared (e.g. the coordinator has not
	// decided yet, or could not be asked).
	Unknown Decision = iota
	// Commit commits the branch (the global transaction succeeded).
	Commit
	// Rollback rolls the branch back (the global transaction failed).
	Rollback
)

func (d Decision) String() string {
	switch d {
	case Unknown:
		return "unknown"
	case Commit:
		return "commit"
	case Rollback:
		return "rollback"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// ErrBusy is wrapped by the error Cancel (or a duplicate Try) returns when
// the branch's barrier row is locked by a try still in progress. It is not
// permanent: the coordinator retries the call later.
var ErrBusy = errors.New("xa: the branch's try is still in progress; retry later")

// lockWait bounds how long Cancel (and the barrier step of Try) waits for
// the barrier row of a try in progress. MySQL and MariaDB only take whole
// seconds.
const (
	pgLockWait    = "200ms"
	mysqlLockWait = 1 // seconds
)

// Branches runs XA branches on a PostgreSQL, MySQL or MariaDB database.
//
// Dialect is appdb.Postgres or appdb.MySQL; it overrides
// Barrier.Dialect, so only Barrier.Table needs to be set (default
// participant.DefaultTable). Branches whose XID is a hash (see XID) keep the
// hash's gid and branch in the table Barrier.Table + "_xid"; Migrate creates
// both tables.
type Branches struct {
	Dialect appdb.Dialect
	Barrier participant.Barrier
}

// Prefixes of the two XID forms.
const (
	plainPrefix = "dtx:"
	hashPrefix  = "dtx#"
	maxXIDLen   = 64
)

// XID returns the transaction identifier of branch br: "dtx:<gid>:<branch>"
// if that is at most 64 bytes and the gid holds only printable ASCII other
// than quotes and backslash, else "dtx#" followed by 48 hex digits of a
// SHA-256 of the gid and branch. Either form can be quoted in SQL as is. The
// Op of br is ignored.
func XID(br participant.Branch) string {
	idx := strconv.Itoa(br.Index)
	if plainGID(br.GID) && len(plainPrefix)+len(br.GID)+1+len(idx) <= maxXIDLen {
		return plainPrefix + br.GID + ":" + idx
	}
	h := sha256.New()
	h.Write([]byte(br.GID))
	h.Write([]byte{0})
	h.Write([]byte(idx))
	return hashPrefix + hex.EncodeToString(h.Sum(nil))[:48]
}

func plainGID(gid string) bool {
	if gid == "" {
		return false
	}
	for i := 0; i < len(gid); i++ {
		c := gid[i]
		if c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parsePlain inverts the plain form of XID.
func parsePlain(xid string) (participant.Branch, bool) {
	if !strings.HasPrefix(xid, plainPrefix) {
		return participant.Branch{}, false
	}
	rest := xid[len(plainPrefix):]
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return participant.Branch{}, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || n < 0 {
		return participant.Branch{}, false
	}
	br := participant.Branch{GID: rest[:i], Index: int(n), Op: dtx.OpTry}
	if XID(br) != xid { // not canonical: not one of ours
		return participant.Branch{}, false
	}
	return br, true
}

var hashRE = regexp.MustCompile(`^dtx#[0-9a-f]{48}$`)

// sqlFor is the dialect-specific SQL, with the barrier table written
// {table} (the XID table is {table}_xid; see appdb.Dialect.Expand) and ?
// parameters.
type sqlFor struct {
	xidSchema   string
	rememberXID string // args: xid, gid, branch
}

func (b Branches) dialect() (sqlFor, error) {
	switch b.Dialect {
	case appdb.Postgres:
		return sqlFor{
			xidSchema: `CREATE TABLE IF NOT EXISTS {table}_xid (
	xid    TEXT    NOT NULL PRIMARY KEY,
	gid    TEXT    NOT NULL,
	branch INTEGER NOT NULL
)`,
			rememberXID: `INSERT INTO {table}_xid (xid, gid, branch) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		}, nil
	case appdb.MySQL:
		return sqlFor{
			xidSchema: `CREATE TABLE IF NOT EXISTS {table}_xid (
	xid    VARBINARY(64)  NOT NULL PRIMARY KEY,
	gid    VARBINARY(256) NOT NULL,
	branch INT            NOT NULL
) ENGINE=InnoDB`,
			rememberXID: `INSERT IGNORE INTO {table}_xid (xid, gid, branch) VALUES (?, ?, ?)`,
		}, nil
	}
	return sqlFor{}, fmt.Errorf("xa: unsupported dialect %v (want Postgres or MySQL)", b.Dialect)
}

func (b Branches) barrier() participant.Barrier {
	bar := b.Barrier
	bar.Dialect = b.Dialect
	return bar
}

// table returns the barrier table, whose name with suffix "_xid" is the XID
// table.
func (b Branches) table() (appdb.Table, error) {
	name := b.Barrier.Table
	if name == "" {
		name = participant.DefaultTable
	}
	t, err := appdb.ParseTable(name, 0)
	if err != nil {
		return appdb.Table{}, fmt.Errorf("participant: invalid barrier table name %q", name)
	}
	if len(t.Name+"_xid") > 64 {
		return appdb.Table{}, fmt.Errorf("xa: barrier table name %q too long for its _xid table", b.Barrier.Table)
	}
	return t, nil
}

// sql returns q with the table names filled in and the parameters rebound.
func (b Branches) sql(t appdb.Table, q string) string {
	return b.Dialect.Rebind(b.Dialect.Expand(t, q))
}

// Migrate creates the barrier table and the XID table if they do not exist.
func (b Branches) Migrate(ctx context.Context, db *sql.DB) error {
	d, err := b.dialect()
	if err != nil {
		return err
	}
	stmts, err := b.barrier().Schema()
	if err != nil {
		return err
	}
	t, err := b.table()
	if err != nil {
		return err
	}
	stmts = append(stmts, b.Dialect.Expand(t, d.xidSchema))
	if err := appdb.Migrate(ctx, appdb.FromSQL(db), stmts); err != nil {
		return fmt.Errorf("xa: migrate: %w", err)
	}
	return nil
}

// execer is what *sql.Conn and *sql.Tx share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txExecer adapts an execer to participant.TxExecer.
type txExecer struct{ e execer }

func (t txExecer) ExecAffected(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.e.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t txExecer) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	var v string
	err := t.e.QueryRowContext(ctx, query, args...).Scan(&v)
	return v, err
}

// lockTimeout reports whether err is the database's lock wait timeout.
func lockTimeout(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "55P03" // lock_not_available
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1205 // ER_LOCK_WAIT_TIMEOUT
	}
	return false
}

// busy wraps a lock timeout as ErrBusy.
func busy(err error) error {
	if err != nil && lockTimeout(err) {
		return fmt.Errorf("%w (%v)", ErrBusy, err)
	}
	return err
}

// discard closes conn and keeps the pool from reusing its session.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// prepared reports whether xid is a prepared transaction of this database
// (PostgreSQL) or server (MySQL).
func (b Branches) prepared(ctx context.Context, q execerQuerier, xid string) (bool, error) {
	xids, err := b.preparedXIDs(ctx, q)
	if err != nil {
		return false, err
	}
	for _, x := range xids {
		if x == xid {
			return true, nil
		}
	}
	return false, nil
}

type execerQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// preparedXIDs lists the prepared transactions' ids (PostgreSQL: of this
// database; MySQL: of the server, XA RECOVER cannot tell databases apart)
// that have one of XID's prefixes.
func (b Branches) preparedXIDs(ctx context.Context, q execerQuerier) ([]string, error) {
	var out []string
	switch b.Dialect {
	case appdb.Postgres:
		rows, err := q.QueryContext(ctx, `SELECT gid FROM pg_prepared_xacts
WHERE database = current_database() AND (gid LIKE 'dtx:%' OR gid LIKE 'dtx#%') ORDER BY prepared`)
		if err != nil {
			return nil, fmt.Errorf("xa: list prepared transactions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var gid string
			if err := rows.Scan(&gid); err != nil {
				return nil, fmt.Errorf("xa: list prepared transactions: %w", err)
			}
			out = append(out, gid)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("xa: list prepared transactions: %w", err)
		}
	case appdb.MySQL:
		rows, err := q.QueryContext(ctx, `XA RECOVER`)
		if err != nil {
			return nil, fmt.Errorf("xa: XA RECOVER: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var format, gtridLen, bqualLen int64
			var data []byte
			if err := rows.Scan(&format, &gtridLen, &bqualLen, &data); err != nil {
				return nil, fmt.Errorf("xa: XA RECOVER: %w", err)
			}
			if format != 1 || bqualLen != 0 || gtridLen != int64(len(data)) {
				continue
			}
			x := string(data)
			if strings.HasPrefix(x, plainPrefix) || strings.HasPrefix(x, hashPrefix) {
				out = append(out, x)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("xa: XA RECOVER: %w", err)
		}
	default:
		_, err := b.dialect()
		return nil, err
	}
	return out, nil
}

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
	if ok, err := b.prepared(ctx, db, xid); err != nil {
		return err
	} else if ok {
		return nil // duplicate: already prepared
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
	// Bound the wait for the barrier row only, not fn.
	var old string
	if err := conn.QueryRowContext(ctx, `SELECT current_setting('lock_timeout')`).Scan(&old); err != nil {
		return fmt.Errorf("xa: begin: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SET LOCAL lock_timeout = '`+pgLockWait+`'`); err != nil {
		return fmt.Errorf("xa: begin: %w", err)
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
	if _, err := conn.ExecContext(ctx, `PREPARE TRANSACTION '`+xid+`'`); err != nil {
		return fmt.Errorf("xa: prepare %s: %w", xid, err)
	}
	// In a transaction that fn left aborted, PREPARE TRANSACTION rolls back
	// without an error: make sure it did prepare.
	ok, err := b.prepared(ctx, conn, xid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("xa: prepare %s: the transaction was aborted and has been rolled back", xid)
	}
	return nil
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

// InDoubt lists the prepared branches of db whose transaction id XID
// produced, oldest first on PostgreSQL, with their gid and branch index (Op
// is "try"). Prepared transactions with other ids are ignored, and so are
// those of other databases of the server (on MySQL, whose XA RECOVER lists
// the whole server's, by the XID table that Try fills in).
func (b Branches) InDoubt(ctx context.Context, db *sql.DB) ([]participant.Branch, error) {
	if _, err := b.dialect(); err != nil {
		return nil, err
	}
	xids, err := b.preparedXIDs(ctx, db)
	if err != nil {
		return nil, err
	}
	t, err := b.table()
	if err != nil {
		return nil, err
	}
	var out []participant.Branch
	for _, x := range xids {
		if br, ok := parsePlain(x); ok && b.Dialect == appdb.Postgres {
			out = append(out, br)
			continue
		} else if !ok && !hashRE.MatchString(x) {
			continue
		}
		br := participant.Branch{Op: dtx.OpTry}
		err = db.QueryRowContext(ctx, b.sql(t, `SELECT gid, branch FROM {table}_xid WHERE xid = ?`), x).Scan(&br.GID, &br.Index)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xa: look up xid %s: %w", x, err)
		}
		if XID(br) == x {
			out = append(out, br)
		}
	}
	return out, nil
}

// Recover finishes every in-doubt branch (see InDoubt) in the direction
// decide returns for it: Commit (as Confirm), Rollback (as Cancel, so a late
// try does nothing) or Unknown (left prepared). It returns how many branches
// it finished, and the errors of those it could not decide or finish.
func (b Branches) Recover(ctx context.Context, db *sql.DB, decide func(ctx context.Context, br participant.Branch) (Decision, error)) (int, error) {
	brs, err := b.InDoubt(ctx, db)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, br := range brs {
		dec, err := decide(ctx, br)
		if err != nil {
			errs = append(errs, fmt.Errorf("xa: decide %s: %w", XID(br), err))
			continue
		}
		switch dec {
		case Commit:
			err = b.Confirm(ctx, db, br)
		case Rollback:
			err = b.Cancel(ctx, db, br)
		case Unknown:
			continue
		default:
			err = fmt.Errorf("xa: recover %s: invalid decision %v", XID(br), dec)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
