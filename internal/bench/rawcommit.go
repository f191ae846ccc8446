package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// rawCommitRate measures the physical limit a store works against: how
// many single-row INSERT transactions per second clients concurrent
// clients commit on the same database (PostgreSQL) or the same disk with
// the same settings (SQLite: a sibling file, WAL, synchronous=FULL). It
// returns 0 and no error for stores it cannot measure (MySQL).
func rawCommitRate(ctx context.Context, dsn string, clients int, d time.Duration) (float64, error) {
	var db *sql.DB
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err = sql.Open("pgx", dsn)
	case strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite://"):
		return 0, nil
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		db, err = sqlitedb.Open(ctx, filepath.Join(filepath.Dir(path), "raw-commit.db"), clients)
	}
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(clients)
	// A table of its own per run: a leftover of a killed run, or another
	// bench on the same database, must not collide.
	table := fmt.Sprintf("dtx_raw_commit_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (id BIGINT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("raw commit rate: %w", err)
	}
	defer db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE `+table)
	var next atomic.Int64
	rate, err := rateOf(ctx, clients, d, func(runCtx context.Context, _ int, done func()) error {
		for runCtx.Err() == nil {
			if _, err := db.ExecContext(runCtx, `INSERT INTO `+table+` (id, v) VALUES ($1, 'x')`, next.Add(1)); err != nil {
				if runCtx.Err() != nil {
					return nil // the measurement ended during the insert
				}
				return err
			}
			done()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raw commit rate: %w", err)
	}
	return rate, nil
}
