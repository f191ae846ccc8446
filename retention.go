package dtx

import (
	"context"
	"time"
)

// Purger is implemented by stores that can forget finished transactions.
// Every store in this module implements it; the coordinator server runs it
// periodically (see `dtx server --retention`).
type Purger interface {
	// PurgeFinished deletes at most limit finished (succeeded or failed)
	// transactions whose last update was before `before`, with their
	// branches and events, in one short database transaction, and returns
	// how many it deleted. It never deletes a running or compensating
	// transaction. Callers loop until it returns fewer than limit.
	PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error)
}
