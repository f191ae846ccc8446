package participant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx/appdb"
)

// MinPurgeAge is the shortest barrier retention Purge accepts, whatever the
// coordinator's settings: below a day, a slow compensation, a paused
// coordinator or a replayed broker queue is too likely to bring a call
// whose barrier row is gone.
const MinPurgeAge = 24 * time.Hour

// CompensationMargin is the time SafeRetention allows, beyond the
// transaction and branch timeouts, for a transaction's compensations to
// finish.
const CompensationMargin = time.Hour

// ErrRetentionTooShort is returned (wrapped) by Purge for an age that could
// delete a row a late call still needs.
var ErrRetentionTooShort = errors.New("retention shorter than the minimum safe age")

// SafeRetention is the minimum age at which a barrier row may be purged:
// every call of a branch reaches the participant before its transaction
// ends, which is at most the coordinator's maximum transaction timeout
// (coordinator.Config.MaxTimeout) plus one more branch call
// (Config.MaxBranchTimeout) plus the time its compensations take
// (CompensationMargin), and a copy of a call may arrive late by the
// transport's redelivery window (for a broker transport: how long the
// broker may redeliver, e.g. JetStream AckWait × MaxDeliver; 0 for HTTP).
// Rows younger than that may still be needed: purging the row of an action
// would let a duplicate run again, or turn its compensation into a null
// compensation. The result is at least MinPurgeAge.
//
// If a transaction stays compensating for longer (a compensation that keeps
// failing), keep the rows until it is resolved: raise the age.
func SafeRetention(maxTimeout, maxBranchTimeout, redelivery time.Duration) time.Duration {
	return max(maxTimeout+maxBranchTimeout+CompensationMargin+redelivery, MinPurgeAge)
}

// purgeSQL deletes at most ? barrier rows older than an age; args: the age
// (see purgeArg), the batch size.
var purgeSQL = map[appdb.Dialect]string{
	appdb.SQLite: `DELETE FROM {table} WHERE (gid, branch, op) IN (SELECT gid, branch, op FROM {table}
	WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) LIMIT ?)`,
	appdb.Postgres: `DELETE FROM {table} WHERE (gid, branch, op) IN (SELECT gid, branch, op FROM {table}
	WHERE created_at < now() - make_interval(secs => ?) LIMIT ?)`,
	appdb.MySQL: `DELETE FROM {table} WHERE created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND LIMIT ?`,
}

// purgeArg is the age as the dialect's purge statement takes it.
func purgeArg(d appdb.Dialect, age time.Duration) any {
	switch d {
	case appdb.SQLite:
		return fmt.Sprintf("-%.6f seconds", age.Seconds())
	case appdb.Postgres:
		return age.Seconds()
	default:
		return age.Microseconds()
	}
}

// PurgeStatement returns the statement that deletes one batch of barrier
// rows and its arguments, for drivers other than database/sql (see
// package participant/pgxbarrier): it deletes at most batch rows created
// (by the database's clock) more than olderThan ago. olderThan below
// MinPurgeAge is refused with ErrRetentionTooShort.
func (b Barrier) PurgeStatement(olderThan time.Duration, batch int) (stmt string, args []any, err error) {
	if olderThan < MinPurgeAge {
		return "", nil, fmt.Errorf("participant: purge barrier rows older than %v: %w (%v; see SafeRetention)", olderThan, ErrRetentionTooShort, MinPurgeAge)
	}
	if _, err := b.queries(); err != nil {
		return "", nil, err
	}
	t, _ := appdb.ParseTable(b.table(), 0)
	stmt = b.Dialect.Rebind(b.Dialect.Expand(t, purgeSQL[b.Dialect]))
	return stmt, []any{purgeArg(b.Dialect, olderThan), appdb.PurgeBatch(batch)}, nil
}

// Purge deletes the barrier rows created (by the database's clock) more
// than olderThan ago, at most batch rows per statement (0: a default of
// appdb.DefaultPurgeBatch), each statement its own short transaction, and
// returns how many it deleted. olderThan must be at least MinPurgeAge;
// pass SafeRetention of your coordinator's settings (or more). Run it
// periodically with appdb.Periodically.
func (b Barrier) Purge(ctx context.Context, db *sql.DB, olderThan time.Duration, batch int) (int64, error) {
	stmt, args, err := b.PurgeStatement(olderThan, batch)
	if err != nil {
		return 0, err
	}
	n, err := appdb.PurgeInBatches(ctx, appdb.SQLExecer(db), stmt, args[1].(int), args[0])
	if err != nil {
		return n, fmt.Errorf("participant: purge barrier: %w", err)
	}
	return n, nil
}

func (b Barrier) table() string {
	if b.Table == "" {
		return DefaultTable
	}
	return b.Table
}
