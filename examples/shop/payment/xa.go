package payment

import (
	"context"
	"errors"

	"github.com/dtxhq/dtx/examples/shop/internal/shopxa"
	"github.com/dtxhq/dtx/participant"
)

// XA: a prepare runs the saga's charge (balance -> spent, payment CHARGED)
// as an XA branch of the payment database and prepares it; commit makes it
// visible, rollback discards it. Nothing is reserved: until the commit, the
// account row stays locked and other transactions see the old balance.
// Needs PostgreSQL (or MySQL); on SQLite the endpoints refuse.

func (s *Service) handleXAPrepare(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.xa.Prepare(ctx, br, func(ctx context.Context, q shopxa.Querier) error {
		return charge(ctx, q, br.GID, req)
	})
	if errors.Is(err, ErrDeclined) {
		s.recordDecline(ctx, br.GID, req, err)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"order_id": req.OrderID, "prepared": true}, nil
}

func (s *Service) handleXACommit(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	if err := s.xa.Commit(ctx, br); err != nil {
		return nil, err
	}
	return s.Payment(ctx, req.OrderID)
}

func (s *Service) handleXARollback(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	if err := s.xa.Rollback(ctx, br); err != nil {
		return nil, err
	}
	return map[string]int64{"order_id": req.OrderID}, nil
}

// Resolver returns the service's resolver, deciding from src (the
// coordinator): it finishes XA branches left prepared and cancels the TCC
// reservations of failed transactions (see shopxa.Resolver).
func (s *Service) Resolver(src shopxa.StatusSource) *shopxa.Resolver {
	return &shopxa.Resolver{
		Endpoints: s.xa, Source: src, Logger: s.log,
		Reserved:       shopxa.StaleReserved(s.db, "payments"),
		CancelReserved: shopxa.CancelReserved(s.db, "payments", cancelReservation),
	}
}
