package flow

import (
	"context"
	"fmt"
	"time"

	"github.com/dtxhq/dtx/appdb"
)

// Purge deletes the events observed before `before`, at most batch rows per
// statement (0: appdb.DefaultPurgeBatch), each statement its own short
// transaction, and returns how many it deleted. Events go one by one by
// age, so a flow that lasts longer than the retention loses its first
// events first.
func (s *Store) Purge(ctx context.Context, before time.Time, batch int) (int64, error) {
	n, err := appdb.PurgeInBatches(ctx, appdb.SQLExecer(s.db),
		`DELETE FROM dtx_flow_events WHERE message_id IN
		 (SELECT message_id FROM dtx_flow_events WHERE observed_at < $1 LIMIT $2)`,
		appdb.PurgeBatch(batch), micros(before))
	if err != nil {
		return n, fmt.Errorf("flow: purge: %w", err)
	}
	return n, nil
}
