package cart

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/projection"
)

// ProjectionName names the read model's projection (its checkpoint row).
const ProjectionName = "cart-orders"

// HistoryRow is one checked-out cart in a user's order history.
type HistoryRow struct {
	CartID  string `json:"cart_id"`
	UserID  int64  `json:"user_id"`
	OrderID int64  `json:"order_id"`
	// Status is PENDING until the order settles, then COMPLETED or
	// CANCELLED.
	Status string `json:"status"`
	Total  int64  `json:"total"`
	Reason string `json:"reason,omitempty"`
	// Version is the cart stream's version the row reflects.
	Version int64 `json:"version"`
}

// SalesRow is what one product sold, counting completed orders only.
type SalesRow struct {
	ProductID int64 `json:"product_id"`
	Units     int64 `json:"units"`
	// Revenue is in cents, at the prices of the orders.
	Revenue int64 `json:"revenue"`
	Orders  int64 `json:"orders"`
}

// ReadModel is the query side: tables in their own database, kept by a
// projection of the carts' events.
type ReadModel struct {
	db     *sql.DB
	d      appdb.Dialect
	store  *eventstore.Store
	runner *projection.Runner
}

var readSchema = []string{
	`CREATE TABLE IF NOT EXISTS cart_order_history (
	cart_id  TEXT   PRIMARY KEY,
	user_id  BIGINT NOT NULL,
	order_id BIGINT NOT NULL,
	status   TEXT   NOT NULL,
	total    BIGINT NOT NULL,
	reason   TEXT   NOT NULL,
	version  BIGINT NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS cart_order_history_user ON cart_order_history (user_id, order_id)`,
	`CREATE TABLE IF NOT EXISTS cart_order_lines (
	cart_id    TEXT   NOT NULL,
	product_id BIGINT NOT NULL,
	quantity   BIGINT NOT NULL,
	price      BIGINT NOT NULL,
	PRIMARY KEY (cart_id, product_id)
)`,
	`CREATE TABLE IF NOT EXISTS cart_product_sales (
	product_id BIGINT PRIMARY KEY,
	units      BIGINT NOT NULL,
	revenue    BIGINT NOT NULL,
	orders     BIGINT NOT NULL
)`,
}

// NewReadModel returns the read model of store's cart events in db, a
// SQLite or PostgreSQL database (poll: the projection's PollInterval).
func NewReadModel(store *eventstore.Store, db *sql.DB, d appdb.Dialect, poll time.Duration, log *slog.Logger) (*ReadModel, error) {
	if d != appdb.SQLite && d != appdb.Postgres {
		return nil, fmt.Errorf("cart: the read model runs on SQLite or PostgreSQL, not %v", d)
	}
	m := &ReadModel{db: db, d: d, store: store}
	r, err := projection.New(projection.Config{
		Name: ProjectionName, Source: store, DB: db, Dialect: d,
		Apply: m.apply, Reset: m.reset, PollInterval: poll, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	m.runner = r
	return m, nil
}

// Runner is the projection that keeps the read model.
func (m *ReadModel) Runner() *projection.Runner { return m.runner }

// Migrate creates the read model's tables and the projection's checkpoint.
func (m *ReadModel) Migrate(ctx context.Context) error {
	if err := appdb.Migrate(ctx, appdb.FromSQL(m.db), readSchema); err != nil {
		return fmt.Errorf("cart: migrate read model: %w", err)
	}
	return m.runner.Migrate(ctx)
}

func (m *ReadModel) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	_, err := tx.ExecContext(ctx, m.d.Rebind(q), args...)
	return err
}

// apply updates the tables for one event, inside the projection's
// transaction. Events of other streams and the cart's own edits leave them
// alone.
func (m *ReadModel) apply(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
	if !strings.HasPrefix(e.Stream, StreamPrefix) {
		return nil
	}
	cartID := strings.TrimPrefix(e.Stream, StreamPrefix)
	switch e.Type {
	case CheckedOut:
		var d CheckedOutData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		if err := m.exec(ctx, tx, `INSERT INTO cart_order_history (cart_id, user_id, order_id, status, total, reason, version)
VALUES (?, ?, ?, 'PENDING', ?, '', ?)`, cartID, d.UserID, d.OrderID, d.Total, e.Version); err != nil {
			return err
		}
		for _, it := range d.Items {
			if err := m.exec(ctx, tx, `INSERT INTO cart_order_lines (cart_id, product_id, quantity, price) VALUES (?, ?, ?, ?)`,
				cartID, it.ProductID, it.Quantity, it.Price); err != nil {
				return err
			}
		}
	case OrderSettled:
		var d SettledData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		if err := m.exec(ctx, tx, `UPDATE cart_order_history SET status = ?, reason = ?, version = ? WHERE cart_id = ?`,
			string(d.Status), d.Reason, e.Version, cartID); err != nil {
			return err
		}
		if d.Status == StatusCompleted {
			return m.exec(ctx, tx, `INSERT INTO cart_product_sales (product_id, units, revenue, orders)
SELECT product_id, quantity, quantity * price, 1 FROM cart_order_lines WHERE cart_id = ?
ON CONFLICT (product_id) DO UPDATE SET units = cart_product_sales.units + excluded.units,
	revenue = cart_product_sales.revenue + excluded.revenue, orders = cart_product_sales.orders + 1`, cartID)
		}
	}
	return nil
}

func (m *ReadModel) reset(ctx context.Context, tx *sql.Tx) error {
	for _, t := range []string{"cart_order_history", "cart_order_lines", "cart_product_sales"} {
		if err := m.exec(ctx, tx, "DELETE FROM "+t); err != nil {
			return err
		}
	}
	return nil
}

// History returns the order history of a user, latest order first.
func (m *ReadModel) History(ctx context.Context, userID int64) ([]HistoryRow, error) {
	return m.history(ctx, m.db, "WHERE user_id = ? ORDER BY order_id DESC", userID)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (m *ReadModel) history(ctx context.Context, q querier, where string, args ...any) ([]HistoryRow, error) {
	rows, err := q.QueryContext(ctx, m.d.Rebind(`SELECT cart_id, user_id, order_id, status, total, reason, version FROM cart_order_history `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("cart: read history: %w", err)
	}
	defer rows.Close()
	out := []HistoryRow{}
	for rows.Next() {
		var h HistoryRow
		if err := rows.Scan(&h.CartID, &h.UserID, &h.OrderID, &h.Status, &h.Total, &h.Reason, &h.Version); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Sales returns the sales per product, by product id.
func (m *ReadModel) Sales(ctx context.Context) ([]SalesRow, error) { return m.sales(ctx, m.db) }

func (m *ReadModel) sales(ctx context.Context, q querier) ([]SalesRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT product_id, units, revenue, orders FROM cart_product_sales ORDER BY product_id`)
	if err != nil {
		return nil, fmt.Errorf("cart: read sales: %w", err)
	}
	defer rows.Close()
	out := []SalesRow{}
	for rows.Next() {
		var s SalesRow
		if err := rows.Scan(&s.ProductID, &s.Units, &s.Revenue, &s.Orders); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Lag reports how far the read model is behind the event store.
func (m *ReadModel) Lag(ctx context.Context) (projection.Lag, error) { return m.runner.Lag(ctx) }

// Verify recomputes the read model from the event store, by folding every
// event up to the projection's checkpoint, and compares it with the
// tables row by row. It returns one line per difference (none: the read
// model equals the fold of the events).
func (m *ReadModel) Verify(ctx context.Context) ([]string, error) {
	// One read transaction: the checkpoint and the rows it produced.
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: m.d != appdb.SQLite, Isolation: m.isolation()})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var cp int64
	if err := tx.QueryRowContext(ctx, m.d.Rebind(`SELECT position FROM `+projection.DefaultTable+` WHERE name = ?`), ProjectionName).Scan(&cp); err != nil {
		return nil, fmt.Errorf("cart: read checkpoint: %w", err)
	}
	gotH, err := m.history(ctx, tx, "ORDER BY cart_id")
	if err != nil {
		return nil, err
	}
	gotS, err := m.sales(ctx, tx)
	if err != nil {
		return nil, err
	}
	wantH, wantS, err := Recompute(ctx, m.store, cp)
	if err != nil {
		return nil, err
	}
	var diffs []string
	got := map[string]HistoryRow{}
	for _, h := range gotH {
		got[h.CartID] = h
	}
	for _, id := range slices.Sorted(maps.Keys(wantH)) {
		if g, ok := got[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("read model: cart %s: no history row, the events say %+v", id, wantH[id]))
		} else if g != wantH[id] {
			diffs = append(diffs, fmt.Sprintf("read model: cart %s: history row %+v, the events say %+v", id, g, wantH[id]))
		}
		delete(got, id)
	}
	for id, g := range got {
		diffs = append(diffs, fmt.Sprintf("read model: cart %s: history row %+v that no event explains", id, g))
	}
	gs := map[int64]SalesRow{}
	for _, s := range gotS {
		gs[s.ProductID] = s
	}
	for _, p := range slices.Sorted(maps.Keys(wantS)) {
		if g := gs[p]; g != wantS[p] {
			diffs = append(diffs, fmt.Sprintf("read model: product %d: sales %+v, the events say %+v", p, g, wantS[p]))
		}
		delete(gs, p)
	}
	for p, g := range gs {
		diffs = append(diffs, fmt.Sprintf("read model: product %d: sales %+v that no event explains", p, g))
	}
	return diffs, nil
}

func (m *ReadModel) isolation() sql.IsolationLevel {
	if m.d == appdb.Postgres {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// Recompute folds the carts' events of store up to position upTo (all
// when upTo < 0) into the rows the read model should hold: history by
// cart id and sales by product id. It shares no code with the projection
// that keeps the tables, so that each checks the other.
func Recompute(ctx context.Context, store *eventstore.Store, upTo int64) (map[string]HistoryRow, map[int64]SalesRow, error) {
	hist := map[string]HistoryRow{}
	lines := map[string][]SalesRow{} // per cart: units and revenue per product
	sales := map[int64]SalesRow{}
	after := int64(0)
	for {
		evs, err := store.ReadAll(ctx, after, 0)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range evs {
			if upTo >= 0 && e.Position > upTo {
				return hist, sales, nil
			}
			after = e.Position
			id, ok := strings.CutPrefix(e.Stream, StreamPrefix)
			if !ok {
				continue
			}
			switch e.Type {
			case CheckedOut:
				var d CheckedOutData
				if err := json.Unmarshal(e.Data, &d); err != nil {
					return nil, nil, err
				}
				hist[id] = HistoryRow{CartID: id, UserID: d.UserID, OrderID: d.OrderID, Status: "PENDING", Total: d.Total, Version: e.Version}
				var ls []SalesRow
				for _, it := range d.Items {
					ls = append(ls, SalesRow{ProductID: it.ProductID, Units: it.Quantity, Revenue: it.Quantity * it.Price, Orders: 1})
				}
				lines[id] = ls
			case OrderSettled:
				var d SettledData
				if err := json.Unmarshal(e.Data, &d); err != nil {
					return nil, nil, err
				}
				h := hist[id]
				h.Status, h.Reason, h.Version = string(d.Status), d.Reason, e.Version
				hist[id] = h
				if d.Status == StatusCompleted {
					for _, l := range lines[id] {
						s := sales[l.ProductID]
						s.ProductID = l.ProductID
						s.Units += l.Units
						s.Revenue += l.Revenue
						s.Orders += l.Orders
						sales[l.ProductID] = s
					}
				}
			}
		}
		if len(evs) < eventstore.DefaultLimit {
			return hist, sales, nil
		}
	}
}
