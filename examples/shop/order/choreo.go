package order

import (
	"context"
	"database/sql"
	"errors"

	"github.com/dtxhq/dtx/examples/shop/events"
)

// Reactions is the order's part of the choreographed flow (package
// events): PaymentCharged completes the order, StockFailed and
// StockRestored cancel it. Each moves the order only out of PENDING, so an
// event that comes after the outcome (a duplicate, or one from a flow gone
// wrong) can never resurrect a cancelled order or cancel a completed one:
// completing a cancelled order is refused (the message is dead-lettered,
// for an operator to see) and cancelling a completed one is ignored.
func (s *Service) Reactions() map[string]events.Reaction {
	cancel := func(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (string, any, error) {
		ev, err := events.Decode[events.Outcome](payload)
		if err != nil {
			return "", nil, err
		}
		if _, err := s.transition(ctx, tx, gid, payload, Cancelled, ev.Reason); err != nil {
			return "", nil, err
		}
		if st, err := s.statusIn(ctx, tx, ev.OrderID); err != nil || st != Cancelled {
			// An ignored cancellation (the order completed, or does not
			// exist) closes no flow: it publishes nothing.
			return "", nil, err
		}
		return events.OrderCancelled, events.Outcome{OrderID: ev.OrderID, Reason: ev.Reason}, nil
	}
	return map[string]events.Reaction{
		events.PaymentCharged: func(ctx context.Context, tx *sql.Tx, gid string, payload []byte) (string, any, error) {
			ev, err := events.Decode[events.Outcome](payload)
			if err != nil {
				return "", nil, err
			}
			if _, err := s.transition(ctx, tx, gid, payload, Completed, ""); err != nil {
				return "", nil, err
			}
			return events.OrderCompleted, events.Outcome{OrderID: ev.OrderID}, nil
		},
		events.StockFailed:   cancel,
		events.StockRestored: cancel,
	}
}

// statusIn reads the order's status inside tx ("" if there is no such
// order).
func (s *Service) statusIn(ctx context.Context, tx *sql.Tx, orderID int64) (Status, error) {
	var st Status
	err := tx.QueryRowContext(ctx, `SELECT status FROM orders WHERE id = $1`, orderID).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return st, err
}

// PlacedEvent is the OrderPlaced event of o.
func PlacedEvent(o *Order) events.Order {
	ev := events.Order{OrderID: o.ID, UserID: o.UserID, Total: o.Total}
	for _, it := range o.Items {
		ev.Items = append(ev.Items, events.Item{ProductID: it.ProductID, Quantity: it.Quantity, Price: it.Price})
	}
	return ev
}
