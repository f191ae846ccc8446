package serve

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
)

// DefaultRetention is how long `dtx server --retention` keeps a finished
// transaction (with its branches and events) after its last update: a week
// to look at it in the dashboard or with `dtx tx`.
const DefaultRetention = 7 * 24 * time.Hour

// MinRetention is the shortest retention Run accepts (0 aside, which keeps
// everything). A gid is unique only while its transaction is stored: once
// purged, a late resubmission with the same gid starts a new transaction,
// so the retention must exceed how long submitters retry a submission.
const MinRetention = time.Hour

// PurgeBatch is how many finished transactions one purge statement deletes
// at most: each batch is a short transaction of its own, so the purge
// never holds the store's locks for long.
const PurgeBatch = 500

// checkRetention refuses a retention Run cannot honour safely.
func checkRetention(d time.Duration) error {
	if d < 0 || (d > 0 && d < MinRetention) {
		return &ConfigError{fmt.Sprintf("retention %v: want 0 (keep forever) or at least %v", d, MinRetention)}
	}
	return nil
}

// purgeEvery is how often the retention loop runs for a retention: a tenth
// of it, between a minute and an hour.
func purgeEvery(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Minute), time.Hour)
}

// runRetention purges, until ctx is done, the finished transactions older
// than retention: once at start, then every purgeEvery(retention).
func runRetention(ctx context.Context, log *slog.Logger, p dtx.Purger, retention time.Duration) {
	t := time.NewTicker(purgeEvery(retention))
	defer t.Stop()
	for {
		n, err := PurgeFinished(ctx, p, time.Now().Add(-retention), PurgeBatch)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("retention: purge finished transactions", slog.Any("err", err))
		case n > 0:
			log.Info("retention: purged finished transactions", slog.Int("count", n), slog.Duration("older_than", retention))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeFinished deletes every finished transaction last updated before
// `before`, batch by batch (see dtx.Purger), and returns how many it
// deleted. It stops early when ctx is done.
func PurgeFinished(ctx context.Context, p dtx.Purger, before time.Time, batch int) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := p.PurgeFinished(ctx, before, batch)
		total += n
		if err != nil {
			return total, err
		}
		if n < batch {
			break
		}
	}
	return total, ctx.Err()
}

// purge deletes, until ctx is done, the recorded flow events observed more
// than retention ago, on the schedule of runRetention.
func (fr *flowRecorder) purge(ctx context.Context, log *slog.Logger, retention time.Duration) {
	_ = appdb.Periodically(ctx, purgeEvery(retention), func(ctx context.Context) error {
		n, err := fr.store.Purge(ctx, time.Now().Add(-retention), PurgeBatch)
		if n > 0 {
			log.Info("retention: purged flow events", slog.Int64("count", n), slog.Duration("older_than", retention))
		}
		return err
	}, func(err error) { log.Warn("retention: purge flow events", slog.Any("err", err)) })
}
