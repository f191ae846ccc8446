package xa

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

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

// xidInUse reports whether err is MySQL's XAER_DUPID: the XID is another
// session's, active or prepared.
func xidInUse(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1440
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
	if b.Dialect == appdb.Postgres {
		rows, err := q.QueryContext(ctx, `SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()`, xid)
		if err != nil {
			return false, fmt.Errorf("xa: look up prepared transaction: %w", err)
		}
		defer rows.Close()
		found := rows.Next()
		if err := rows.Err(); err != nil {
			return false, fmt.Errorf("xa: look up prepared transaction: %w", err)
		}
		return found, nil
	}
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
