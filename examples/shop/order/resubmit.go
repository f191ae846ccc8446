package order

import (
	"context"
	"fmt"
	"time"
)

// resubmitBatch bounds the orders one Resubmit pass looks at.
const resubmitBatch = 100

// Run resubmits the sagas of PENDING orders every Config.ResubmitInterval
// until ctx is done, so that no order is left without a saga when the
// coordinator was unreachable at placement. It returns nil when ctx is done.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ResubmitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := s.Resubmit(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "resubmit pending orders", "resubmitted", n, "err", err)
		}
	}
}

// Resubmit submits once more the saga of every PENDING order (up to a
// batch) whose last submission, or creation, is older than
// Config.ResubmitAfter. It stops at the first failed submission (the
// coordinator is probably down) and returns how many were accepted.
func (s *Service) Resubmit(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-s.cfg.ResubmitAfter).UnixMilli()
	rows, err := s.db.QueryContext(ctx,
		`SELECT id FROM orders WHERE status = $1 AND submitted_at <= $2 AND created_at <= $2 AND pattern <> 'choreography' ORDER BY id LIMIT $3`,
		Pending, cutoff, resubmitBatch)
	if err != nil {
		return 0, fmt.Errorf("find pending orders: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find pending orders: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find pending orders: %w", err)
	}
	n := 0
	for _, id := range ids {
		o, err := s.Get(ctx, id)
		if err != nil {
			return n, err
		}
		if o.Status != Pending {
			continue // finished meanwhile
		}
		if !s.submit(ctx, o, false) {
			return n, fmt.Errorf("coordinator did not accept saga %s", o.GID)
		}
		n++
	}
	return n, nil
}
