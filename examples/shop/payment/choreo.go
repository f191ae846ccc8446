package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
)

// Reactions is the payment's part of the choreographed flow (package
// events): StockDeducted charges the order's total (PaymentCharged, or
// PaymentFailed when the charge is refused). Payment is the last step, so
// it has nothing to compensate.
func (s *Service) Reactions() map[string]events.Reaction {
	return map[string]events.Reaction{events.StockDeducted: s.onStockDeducted}
}

func (s *Service) onStockDeducted(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (string, any, error) {
	ev, err := events.Decode[events.Order](payload)
	if err != nil {
		return "", nil, err
	}
	req := ChargeRequest{OrderID: ev.OrderID, UserID: ev.UserID, Amount: ev.Total}
	err = shopdb.Savepoint(ctx, tx, func() error { return charge(ctx, tx, gid, req) })
	if dtx.IsPermanent(err) {
		// The refusal is kept as a DECLINED payment, committed with the
		// event that announces it, as the saga and TCC paths keep theirs.
		if errors.Is(err, ErrDeclined) {
			if err := insertDecline(ctx, tx, gid, req, err); err != nil {
				return "", nil, fmt.Errorf("record declined payment: %w", err)
			}
		}
		return events.PaymentFailed, events.Outcome{OrderID: ev.OrderID, Reason: err.Error()}, nil
	}
	if err != nil {
		return "", nil, err
	}
	return events.PaymentCharged, events.Outcome{OrderID: ev.OrderID}, nil
}
