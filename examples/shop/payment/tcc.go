package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

// TCC: a try holds money (balance -> reserved) and records the payment
// RESERVED; a confirm spends it (reserved -> spent, payment CHARGED); a
// cancel releases it (reserved -> balance, payment CANCELLED). Confirm and
// cancel act on the stored payment, never on their payload's amount.

// requireOp refuses a call made with another Dtx-Op than the endpoint's: the
// barrier pairs a cancel with its try by op name.
func requireOp(br participant.Branch, op dtx.Op) error {
	if br.Op != op {
		return dtx.Permanentf("payment: this endpoint takes Dtx-Op %q, not %q", op, br.Op)
	}
	return nil
}

func (s *Service) handleReserve(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	if err := requireOp(br, dtx.OpTry); err != nil {
		return nil, err
	}
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return reserve(ctx, tx, br.GID, req)
	})
	if errors.Is(err, ErrDeclined) {
		s.recordDecline(ctx, br.GID, req, err)
	}
	if err != nil {
		return nil, err
	}
	return s.Payment(ctx, req.OrderID)
}

func (s *Service) handleReserveConfirm(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	if err := requireOp(br, dtx.OpConfirm); err != nil {
		return nil, err
	}
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return confirmReservation(ctx, tx, req.OrderID)
	})
	if err != nil {
		return nil, err
	}
	return s.Payment(ctx, req.OrderID)
}

func (s *Service) handleReserveCancel(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	if err := requireOp(br, dtx.OpCancel); err != nil {
		return nil, err
	}
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return cancelReservation(ctx, tx, req.OrderID)
	})
	if err != nil {
		return nil, err
	}
	return s.cancelResult(ctx, req.OrderID, Cancelled)
}

// reserve holds the amount on the user's account and records the payment
// RESERVED.
func reserve(ctx context.Context, tx *sql.Tx, gid string, req ChargeRequest) error {
	if req.Amount < 0 {
		return dtx.Permanentf("payment: negative amount %d", req.Amount)
	}
	if req.UserID == DeclinedUserID {
		return dtx.Permanent(fmt.Errorf("%w: user %d is not allowed to pay", ErrDeclined, req.UserID))
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE accounts SET balance = balance - $1, reserved = reserved + $1 WHERE user_id = $2 AND balance >= $1`,
		req.Amount, req.UserID)
	if err != nil {
		return fmt.Errorf("reserve for user %d: %w", req.UserID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return whyDeclined(ctx, tx, req)
	}
	// As for a charge: only a DECLINED row may be replaced.
	now := time.Now().UnixMilli()
	res, err = tx.ExecContext(ctx,
		`INSERT INTO payments (order_id, user_id, amount, status, reason, gid, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, '', $5, $6, $6)
		 ON CONFLICT (order_id) DO UPDATE
		 SET user_id = excluded.user_id, amount = excluded.amount, status = excluded.status,
		     reason = '', gid = excluded.gid, updated_at = excluded.updated_at
		 WHERE payments.status = $7`,
		req.OrderID, req.UserID, req.Amount, Reserved, gid, now, Declined)
	if err != nil {
		return fmt.Errorf("record payment: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return dtx.Permanentf("payment: order %d already has a payment", req.OrderID)
	}
	return nil
}

// held reads the payment of an order for confirm or cancel. ok is false if
// there is none.
func held(ctx context.Context, tx *sql.Tx, orderID int64) (userID, amount int64, status string, ok bool, err error) {
	err = tx.QueryRowContext(ctx,
		`SELECT user_id, amount, status FROM payments WHERE order_id = $1`, orderID).Scan(&userID, &amount, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, "", false, nil
	}
	if err != nil {
		return 0, 0, "", false, fmt.Errorf("read payment: %w", err)
	}
	return userID, amount, status, true, nil
}

// confirmReservation spends a RESERVED payment. CHARGED is a no-op; anything
// else is refused (the coordinator confirms only after the try succeeded and
// never after a cancel).
func confirmReservation(ctx context.Context, tx *sql.Tx, orderID int64) error {
	userID, amount, status, ok, err := held(ctx, tx, orderID)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return dtx.Permanentf("payment: order %d has no reservation to confirm", orderID)
	case status == Charged:
		return nil
	case status != Reserved:
		return dtx.Permanentf("payment: payment of order %d is %s and cannot be confirmed", orderID, status)
	}
	// The guarded status change comes first: of two concurrent confirms (or
	// a confirm and a cancel) only one moves the money.
	if moved, err := moveReserved(ctx, tx, orderID, Charged); err != nil || !moved {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE accounts SET reserved = reserved - $1, spent = spent + $1 WHERE user_id = $2`,
		amount, userID); err != nil {
		return fmt.Errorf("confirm for user %d: %w", userID, err)
	}
	return nil
}

// moveReserved changes the order's payment from RESERVED to status and
// reports whether it did (false: another transaction got there first).
func moveReserved(ctx context.Context, tx *sql.Tx, orderID int64, status string) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE payments SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4`,
		status, time.Now().UnixMilli(), orderID, Reserved)
	if err != nil {
		return false, fmt.Errorf("mark %s: %w", status, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// cancelReservation releases a RESERVED payment. No payment, a DECLINED or
// an already CANCELLED one is a no-op; a CHARGED one is refused (a TCC
// cancel never follows a confirm).
func cancelReservation(ctx context.Context, tx *sql.Tx, orderID int64) error {
	userID, amount, status, ok, err := held(ctx, tx, orderID)
	if err != nil {
		return err
	}
	switch {
	case !ok || status == Declined || status == Cancelled:
		return nil
	case status != Reserved:
		return dtx.Permanentf("payment: payment of order %d is %s and cannot be cancelled", orderID, status)
	}
	if moved, err := moveReserved(ctx, tx, orderID, Cancelled); err != nil || !moved {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE accounts SET reserved = reserved - $1, balance = balance + $1 WHERE user_id = $2`,
		amount, userID); err != nil {
		return fmt.Errorf("release for user %d: %w", userID, err)
	}
	return nil
}
