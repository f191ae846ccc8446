package pgxbarrier

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

// Execer runs a statement: *pgxpool.Pool and *pgx.Conn implement it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var _ Execer = (*pgx.Conn)(nil)

// Purge is participant.Barrier.Purge on pgx: it deletes b's barrier rows
// created more than olderThan ago, at most batch rows per statement (0: the
// default), and returns how many it deleted. olderThan below
// participant.MinPurgeAge is refused (see participant.SafeRetention).
// b.Dialect is ignored.
func Purge(ctx context.Context, db Execer, b participant.Barrier, olderThan time.Duration, batch int) (int64, error) {
	stmt, args, err := postgres(b).PurgeStatement(olderThan, batch)
	if err != nil {
		return 0, err
	}
	exec := func(ctx context.Context, stmt string, args ...any) (int64, error) {
		tag, err := db.Exec(ctx, stmt, args...)
		return tag.RowsAffected(), err
	}
	n, err := appdb.PurgeInBatches(ctx, exec, stmt, args[1].(int), args[0])
	if err != nil {
		return n, fmt.Errorf("pgxbarrier: purge: %w", err)
	}
	return n, nil
}
