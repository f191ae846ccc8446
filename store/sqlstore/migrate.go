package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"time"
)

// Migrate applies the dialect's migrations that are not yet recorded in
// dtx_schema_migrations, each in its own transaction. MySQL commits DDL
// implicitly, so there a migration is not atomic: its statements should be
// idempotent (IF NOT EXISTS), and concurrent callers must serialise (as
// store/mysql does with a named lock).
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	if _, err := db.ExecContext(ctx, d.stmt(d.Override.MigrationsTable, `CREATE TABLE IF NOT EXISTS dtx_schema_migrations (
		name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(d.Migrations, "*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := fs.ReadFile(d.Migrations, name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		if err := applyMigration(ctx, db, d, name, string(body)); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, d Dialect, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	defer tx.Rollback()
	var n int
	q, args := d.Bind(`SELECT count(*) FROM dtx_schema_migrations WHERE name = $1`, []any{name})
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		// Another process may have applied it concurrently.
		return fmt.Errorf("apply migration %s (%s): %w", name, d.Name, err)
	}
	q, args = d.Bind(`INSERT INTO dtx_schema_migrations (name, applied_at) VALUES ($1, $2)`, []any{name, time.Now().UnixMilli()})
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("record migration %s: %w", name, err)
	}
	return tx.Commit()
}
