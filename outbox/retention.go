package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dtxhq/dtx/appdb"
)

// purgeBatchSQL deletes at most ? published rows published more than ? ms
// ago; unpublished rows are never touched.
var purgeBatchSQL = map[appdb.Dialect]string{
	appdb.SQLite: `DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table}
	WHERE published_at IS NOT NULL AND published_at < {now} - ? LIMIT ?)`,
	appdb.Postgres: `DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table}
	WHERE published_at IS NOT NULL AND published_at < {now} - ? LIMIT ?)`,
	appdb.MySQL: `DELETE FROM {table} WHERE published_at IS NOT NULL AND published_at < {now} - ? LIMIT ?`,
}

// Purge deletes the rows published (by the database's clock) more than
// olderThan ago, at most batch rows per statement (0:
// appdb.DefaultPurgeBatch), each statement its own short transaction, and
// returns how many it deleted. Unpublished rows are never deleted, so any
// age is safe; a Relay with RelayConfig.Retention runs it by itself, Purge
// is for the rows of a relay that is gone or of an outbox whose rows are
// published elsewhere.
func (o Outbox) Purge(ctx context.Context, db *sql.DB, olderThan time.Duration, batch int) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("outbox: purge: negative age %v", olderThan)
	}
	if _, err := o.queries(); err != nil {
		return 0, err
	}
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	t, _ := appdb.ParseTable(name, len("_unpublished"))
	stmt := o.Dialect.Rebind(o.Dialect.Expand(t, purgeBatchSQL[o.Dialect]))
	n, err := appdb.PurgeInBatches(ctx, appdb.SQLExecerReadCommitted(db, o.Dialect), stmt, appdb.PurgeBatch(batch), olderThan.Milliseconds())
	if err != nil {
		return n, fmt.Errorf("outbox: purge: %w", err)
	}
	return n, nil
}
