package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx/appdb"
)

// MinPurgeAge is the shortest age Purge accepts: an inbox record must
// outlive every redelivery of its message, and no broker redelivers within
// a day only by accident of configuration.
const MinPurgeAge = 24 * time.Hour

// ErrRetentionTooShort is returned (wrapped) by Purge for an age below
// MinPurgeAge.
var ErrRetentionTooShort = errors.New("inbox retention shorter than the minimum safe age")

// SafeRetention is the minimum age at which an inbox record may be purged:
// the broker's redelivery window (how long after a first delivery the same
// message may come again: for JetStream AckWait × MaxDeliver, or the
// stream's MaxAge if consumers can be reset to replay it; for Kafka the
// topic's retention.ms, since a consumer group may rewind to any retained
// offset) plus an hour, and at least MinPurgeAge. A duplicate that arrives
// after its record was purged is processed again.
func SafeRetention(redelivery time.Duration) time.Duration {
	return max(redelivery+time.Hour, MinPurgeAge)
}

// purgeSQL deletes at most ? records processed more than ? ms ago.
var purgeSQL = map[appdb.Dialect]string{
	appdb.SQLite: `DELETE FROM {table} WHERE (consumer_group, msg_id) IN
	(SELECT consumer_group, msg_id FROM {table} WHERE processed_at < {now} - ? LIMIT ?)`,
	appdb.Postgres: `DELETE FROM {table} WHERE (consumer_group, msg_id) IN
	(SELECT consumer_group, msg_id FROM {table} WHERE processed_at < {now} - ? LIMIT ?)`,
	appdb.MySQL: `DELETE FROM {table} WHERE processed_at < {now} - ? LIMIT ?`,
}

// Purge deletes the records of messages processed (by the database's
// clock) more than olderThan ago, at most batch rows per statement (0:
// appdb.DefaultPurgeBatch), each statement its own short transaction, and
// returns how many it deleted. olderThan must be at least MinPurgeAge;
// pass SafeRetention of your broker's redelivery window. Dead letters are
// not touched. Run it periodically with appdb.Periodically.
func (in Inbox) Purge(ctx context.Context, db *sql.DB, olderThan time.Duration, batch int) (int64, error) {
	if olderThan < MinPurgeAge {
		return 0, fmt.Errorf("inbox: purge records older than %v: %w (%v; see SafeRetention)", olderThan, ErrRetentionTooShort, MinPurgeAge)
	}
	if _, err := in.queries(); err != nil {
		return 0, err
	}
	name := in.Table
	if name == "" {
		name = DefaultTable
	}
	t, _ := appdb.ParseTable(name, len("_processed"))
	stmt := in.Dialect.Rebind(in.Dialect.Expand(t, purgeSQL[in.Dialect]))
	n, err := appdb.PurgeInBatches(ctx, appdb.SQLExecerReadCommitted(db, in.Dialect), stmt, appdb.PurgeBatch(batch), olderThan.Milliseconds())
	if err != nil {
		return n, fmt.Errorf("inbox: purge: %w", err)
	}
	return n, nil
}
