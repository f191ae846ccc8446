// Package mysql is the dtx.Store for MySQL (8.0.1 or later) and MariaDB
// (10.6 or later), through github.com/go-sql-driver/mysql. Several
// coordinator processes may share one database: claims use SELECT … FOR
// UPDATE SKIP LOCKED and every write is fenced by the writer's lease.
//
// The store's sessions run in READ COMMITTED (no gap locks between
// concurrent batches and claims) with sql_mode STRICT_ALL_TABLES, whatever
// the server's defaults; Open also turns on the driver's clientFoundRows
// (an UPDATE reports the rows it matched, which the lease fence relies on)
// and multiStatements (for migrations). Tables are InnoDB, utf8mb4.
package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dtxhq/dtx/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// claimDue selects and locks the due transactions (see the due_at column
// in migrations/001_init.sql).
const claimDue = `SELECT gid FROM dtx_tx WHERE due_at < $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`

// Dialect is the MySQL/MariaDB dialect of sqlstore.
var Dialect = sqlstore.Dialect{
	Name:       "mysql",
	Migrations: mustSub(migrations, "migrations"),
	Writers:    2, // as PostgreSQL; not measured for MySQL
	BindVars:   sqlstore.Question,
	IsUniqueViolation: func(err error) bool {
		var e *mysql.MySQLError
		// ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
		return errors.As(err, &e) && (e.Number == 1062 || e.Number == 1586)
	},
	IsDeadlock: func(err error) bool {
		var e *mysql.MySQLError
		return errors.As(err, &e) && e.Number == 1213 // ER_LOCK_DEADLOCK: the transaction was rolled back
	},
	Override: sqlstore.Statements{
		MigrationsTable: `CREATE TABLE IF NOT EXISTS dtx_schema_migrations (
			name VARCHAR(191) NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		// A plain INSERT: InnoDB undoes only the statement on a duplicate
		// key. (INSERT IGNORE would also turn a too-long gid into a
		// warning and store it truncated.)
		InsertTx: `INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		ClaimDue: claimDue,
	},
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// sessionSetup runs on every new connection.
const sessionSetup = `SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED`

// sessionConnector prepares each new session for the store.
type sessionConnector struct{ driver.Connector }

func (c sessionConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("mysql: driver connection cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, sessionSetup, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mysql: set up session: %w", err)
	}
	return conn, nil
}

// Open connects to the database at dsn (go-sql-driver/mysql format, e.g.
// "user:pass@tcp(host:3306)/dtx"), migrates it and returns the store.
func Open(ctx context.Context, dsn string, cfg sqlstore.Config) (*sqlstore.Store, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	if c.DBName == "" {
		return nil, errors.New("mysql DSN: no database name")
	}
	c.ClientFoundRows = true
	c.MultiStatements = true
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["sql_mode"] = "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	db := sql.OpenDB(sessionConnector{conn})
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	// Below the servers' default wait_timeout (8h) and typical proxy idle
	// limits.
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect mysql: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	// Fail now, not at the first claim, on servers without SKIP LOCKED.
	probe, err := db.PrepareContext(ctx, strings.NewReplacer("$1", "?", "$2", "?").Replace(claimDue))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql: the claim query needs MySQL 8.0.1+ or MariaDB 10.6+ (FOR UPDATE SKIP LOCKED): %w", err)
	}
	probe.Close()
	st, err := sqlstore.Open(ctx, db, Dialect, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

// migrate runs the migrations under a named lock of the database: MySQL
// commits DDL implicitly, so concurrent first starts must not interleave.
func migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lock for migration: %w", err)
	}
	defer conn.Close()
	// Named locks are server-wide: scope the name to the database (and
	// keep it under the 64-character limit).
	const lockName = `CONCAT('dtx_migrate_', MD5(DATABASE()))`
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+lockName+`, 120)`).Scan(&got); err != nil {
		return fmt.Errorf("lock for migration: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return errors.New("lock for migration: timed out waiting for another process's migration")
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(`+lockName+`)`)
	if err := sqlstore.Migrate(ctx, db, Dialect); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
