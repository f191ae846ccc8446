package appdb

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DefaultPurgeBatch is how many rows one purge statement deletes when the
// caller passes a batch of 0; MaxPurgeBatch caps larger batches. Each
// statement runs in autocommit, so a purge holds its locks only for one
// batch and never blocks the hot path for long.
const (
	DefaultPurgeBatch = 500
	MaxPurgeBatch     = 10000
)

// PurgeBatch returns the batch size to use for a requested batch: the
// default for 0 and less, capped at MaxPurgeBatch.
func PurgeBatch(batch int) int {
	if batch <= 0 {
		return DefaultPurgeBatch
	}
	return min(batch, MaxPurgeBatch)
}

// Execer runs one statement and reports the rows it affected.
type Execer func(ctx context.Context, stmt string, args ...any) (int64, error)

// SQLExecer adapts a database/sql database to Execer.
func SQLExecer(db *sql.DB) Execer {
	return func(ctx context.Context, stmt string, args ...any) (int64, error) {
		res, err := db.ExecContext(ctx, stmt, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
}

// SQLExecerReadCommitted is SQLExecer for MySQL purges: each statement
// runs in a transaction of its own at READ COMMITTED, where a range delete
// takes no gap locks that would make concurrent inserts wait. Other
// dialects get SQLExecer.
func SQLExecerReadCommitted(db *sql.DB, d Dialect) Execer {
	if d != MySQL {
		return SQLExecer(db)
	}
	return func(ctx context.Context, stmt string, args ...any) (int64, error) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return 0, err
		}
		defer tx.Rollback()
		res, err := tx.ExecContext(ctx, stmt, args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		return n, tx.Commit()
	}
}

// PurgeInBatches runs stmt, a DELETE of at most batch rows whose last
// argument is the batch size, with args and batch appended, until it deletes
// fewer than batch rows or ctx is done, and returns how many rows it
// deleted in all.
func PurgeInBatches(ctx context.Context, exec Execer, stmt string, batch int, args ...any) (int64, error) {
	args = append(args[:len(args):len(args)], batch)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := exec(ctx, stmt, args...)
		total += n
		if err != nil {
			return total, err
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

// Periodically calls fn at once and then every interval until ctx is done;
// an error from fn goes to onError (if not nil) and the loop goes on. It is
// the easy way to run a Purge in the background:
//
//	go appdb.Periodically(ctx, time.Hour, func(ctx context.Context) error {
//		_, err := barrier.Purge(ctx, db, 72*time.Hour, 0)
//		return err
//	}, func(err error) { log.Print(err) })
func Periodically(ctx context.Context, interval time.Duration, fn func(context.Context) error, onError func(error)) error {
	if interval <= 0 {
		return fmt.Errorf("appdb: periodic interval %v: want > 0", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err // a tick may be ready together with ctx.Done
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
