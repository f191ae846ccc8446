package inventory

import (
	"context"
	"database/sql"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/events"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
)

// Reactions is the inventory's part of the choreographed flow (package
// events): OrderPlaced deducts the stock (StockDeducted, or StockFailed when
// it cannot), PaymentFailed restores it (StockRestored). Both use the saga's
// ledger, so the verifier checks them the same way.
func (s *Service) Reactions() map[string]events.Reaction {
	return map[string]events.Reaction{
		events.OrderPlaced:   s.onOrderPlaced,
		events.PaymentFailed: s.onPaymentFailed,
	}
}

func (s *Service) onOrderPlaced(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (string, any, error) {
	ev, err := events.Decode[events.Order](payload)
	if err != nil {
		return "", nil, err
	}
	req := DeductRequest{OrderID: ev.OrderID}
	for _, it := range ev.Items {
		req.Items = append(req.Items, Item{ProductID: it.ProductID, Quantity: it.Quantity, Price: it.Price})
	}
	err = shopdb.Savepoint(ctx, tx, func() error { return deduct(ctx, tx, gid, req) })
	if dtx.IsPermanent(err) {
		// A business refusal is an outcome, not a failure of the message.
		return events.StockFailed, events.Outcome{OrderID: ev.OrderID, Reason: err.Error()}, nil
	}
	if err != nil {
		return "", nil, err
	}
	return events.StockDeducted, events.Order{OrderID: ev.OrderID, UserID: ev.UserID, Total: ev.Total}, nil
}

func (s *Service) onPaymentFailed(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (string, any, error) {
	ev, err := events.Decode[events.Outcome](payload)
	if err != nil {
		return "", nil, err
	}
	if err := restore(ctx, tx, ev.OrderID); err != nil {
		return "", nil, err
	}
	return events.StockRestored, events.Outcome{OrderID: ev.OrderID, Reason: ev.Reason}, nil
}
