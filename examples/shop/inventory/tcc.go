package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
)

// TCC: a try reserves stock (available -> reserved), a confirm sells it
// (reserved -> sold), a cancel releases it (reserved -> available). The
// reservations table records what each try did; confirm and cancel act on
// those rows only, never on their payload's quantities.

// requireOp refuses a call made with another Dtx-Op than the endpoint's: the
// barrier pairs a cancel with its try by op name, so a try sent as "action"
// would escape the anti-hanging check.
func requireOp(br participant.Branch, op dtx.Op) error {
	if br.Op != op {
		return dtx.Permanentf("inventory: this endpoint takes Dtx-Op %q, not %q", op, br.Op)
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
	if err != nil {
		return nil, err
	}
	total, err := s.reservationTotal(ctx, req.OrderID)
	if err != nil {
		return nil, err
	}
	return DeductResult{OrderID: req.OrderID, Total: total}, nil
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
	return map[string]any{"order_id": req.OrderID, "status": Confirmed}, nil
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
	undone, err := s.undoneTotal(ctx, "reservations", req.OrderID)
	if err != nil {
		return nil, err
	}
	return CancelResult{OrderID: req.OrderID, TotalPrice: undone}, nil
}

// reserve moves the items of one order from available to reserved inside
// tx, in product order, and records them RESERVED.
func reserve(ctx context.Context, tx *sql.Tx, gid string, req DeductRequest) error {
	items, err := mergeItems(req.Items)
	if err != nil {
		return err
	}
	// Rows for this order under another branch or gid: it was reserved
	// already (and maybe confirmed or cancelled); never reserve it twice.
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM reservations WHERE order_id = $1`, req.OrderID).Scan(&n); err != nil {
		return fmt.Errorf("read reservations: %w", err)
	}
	if n > 0 {
		return dtx.Permanentf("inventory: order %d already has a reservation", req.OrderID)
	}
	now := time.Now().UnixMilli()
	for _, it := range items {
		var price int64
		err := tx.QueryRowContext(ctx,
			`UPDATE products SET available = available - $1, reserved = reserved + $1
			 WHERE id = $2 AND available >= $1
			 RETURNING price`, it.Quantity, it.ProductID).Scan(&price)
		if errors.Is(err, sql.ErrNoRows) {
			return whyNotDeducted(ctx, tx, it)
		}
		if err != nil {
			return fmt.Errorf("reserve product %d: %w", it.ProductID, err)
		}
		if it.Price != 0 && it.Price != price {
			return dtx.Permanentf("inventory: product %d costs %d, order was priced at %d", it.ProductID, price, it.Price)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO reservations (order_id, product_id, quantity, price, status, gid, created_at, updated_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
			req.OrderID, it.ProductID, it.Quantity, price, Reserved, gid, now)
		if err != nil {
			return fmt.Errorf("write reservation: %w", err)
		}
	}
	return nil
}

// Reservation is one row of the reservations table.
type Reservation struct {
	OrderID   int64  `json:"order_id"`
	ProductID int64  `json:"product_id"`
	Quantity  int64  `json:"quantity"`
	Price     int64  `json:"price"`
	Status    string `json:"status"`
}

func reservationsOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, orderID int64) ([]Reservation, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT order_id, product_id, quantity, price, status FROM reservations WHERE order_id = $1 ORDER BY product_id`,
		orderID)
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	defer rows.Close()
	var out []Reservation
	for rows.Next() {
		var r Reservation
		if err := rows.Scan(&r.OrderID, &r.ProductID, &r.Quantity, &r.Price, &r.Status); err != nil {
			return nil, fmt.Errorf("read reservations: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// confirmReservation sells the RESERVED rows of an order. Already CONFIRMED
// rows are left alone; a CANCELLED row, or no row at all, is refused: the
// coordinator confirms only after every try succeeded, and never after a
// cancel.
func confirmReservation(ctx context.Context, tx *sql.Tx, orderID int64) error {
	rs, err := reservationsOf(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return dtx.Permanentf("inventory: order %d has no reservation to confirm", orderID)
	}
	for _, r := range rs {
		if r.Status == Cancelled {
			return dtx.Permanentf("inventory: reservation of order %d is cancelled and cannot be confirmed", orderID)
		}
	}
	for _, r := range rs {
		if r.Status != Reserved {
			continue
		}
		// The guarded status change comes first: of two concurrent
		// confirms (or a confirm and a cancel) only one moves the stock.
		if moved, err := moveReserved(ctx, tx, r, Confirmed); err != nil {
			return err
		} else if !moved {
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE products SET reserved = reserved - $1, sold = sold + $1 WHERE id = $2`,
			r.Quantity, r.ProductID); err != nil {
			return fmt.Errorf("confirm product %d: %w", r.ProductID, err)
		}
	}
	return nil
}

// moveReserved changes reservation r from RESERVED to status and reports
// whether it did (false: another transaction got there first).
func moveReserved(ctx context.Context, tx *sql.Tx, r Reservation, status string) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND product_id = $4 AND status = $5`,
		status, time.Now().UnixMilli(), r.OrderID, r.ProductID, Reserved)
	if err != nil {
		return false, fmt.Errorf("mark reservation %s: %w", status, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// cancelReservation releases the RESERVED rows of an order. No rows (the try
// never ran or failed) and CANCELLED rows are a no-op; a CONFIRMED row is
// refused: the goods are sold and a TCC cancel never follows a confirm.
func cancelReservation(ctx context.Context, tx *sql.Tx, orderID int64) error {
	rs, err := reservationsOf(ctx, tx, orderID)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Status == Confirmed {
			return dtx.Permanentf("inventory: reservation of order %d is confirmed and cannot be cancelled", orderID)
		}
	}
	for _, r := range rs {
		if r.Status != Reserved {
			continue
		}
		if moved, err := moveReserved(ctx, tx, r, Cancelled); err != nil {
			return err
		} else if !moved {
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE products SET reserved = reserved - $1, available = available + $1 WHERE id = $2`,
			r.Quantity, r.ProductID); err != nil {
			return fmt.Errorf("release product %d: %w", r.ProductID, err)
		}
	}
	return nil
}

func (s *Service) reservationTotal(ctx context.Context, orderID int64) (int64, error) {
	var total int64
	err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(quantity * price), 0) FROM reservations WHERE order_id = $1 AND status <> $2`,
		orderID, Cancelled).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("read reservation total: %w", err)
	}
	return total, nil
}

// Reservations returns the reservations of an order, by product id.
func (s *Service) Reservations(ctx context.Context, orderID int64) ([]Reservation, error) {
	return reservationsOf(ctx, s.db, orderID)
}
