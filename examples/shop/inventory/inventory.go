package inventory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/examples/shop/internal/shopxa"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/participant"
)

// Paths served by Handler.
const (
	PathDeduct       = "/inventory/deduct"
	PathDeductCancel = "/inventory/deduct/cancel"
	// TCC: try, confirm and cancel of a stock reservation.
	PathReserve        = "/inventory/reserve"
	PathReserveConfirm = "/inventory/reserve/confirm"
	PathReserveCancel  = "/inventory/reserve/cancel"
	// XA (two-phase commit): prepare, commit and roll back a deduction.
	PathXAPrepare  = "/inventory/xa/prepare"
	PathXACommit   = "/inventory/xa/commit"
	PathXARollback = "/inventory/xa/rollback"
	PathProducts   = "/inventory/products"
)

// Ledger row states: a deduction is DEDUCTED or CANCELLED; a reservation
// (TCC) is RESERVED, then CONFIRMED or CANCELLED.
const (
	Deducted  = "DEDUCTED"
	Cancelled = "CANCELLED"
	Reserved  = "RESERVED"
	Confirmed = "CONFIRMED"
)

// BarrierTable is the participant barrier table in the inventory database.
const BarrierTable = "inventory_barrier"

// Product is one sellable item. Prices are integer cents.
type Product struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Price     int64  `json:"price"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Initial   int64  `json:"initial"`
}

// Item is one line of a deduct request.
type Item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
	// Price, when set, is the unit price the order was priced with; the
	// deduct is refused if the product's price is different, so the order
	// total and the goods sold always agree.
	Price int64 `json:"price,omitempty"`
}

// DeductRequest is the payload of both saga endpoints.
type DeductRequest struct {
	OrderID int64  `json:"order_id"`
	Items   []Item `json:"items"`
}

// DeductResult is the answer to a successful deduct.
type DeductResult struct {
	OrderID int64 `json:"order_id"`
	// Total is the sum of price*quantity over the deducted items.
	Total int64 `json:"total"`
}

// Config configures a Service.
type Config struct {
	// Dialect of the database (default appdb.SQLite).
	Dialect appdb.Dialect
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// CallVerifier, if set, makes Handler refuse (401) branch calls not
	// signed by the coordinator (participant.RequireSignature).
	CallVerifier *callsig.Verifier
}

// Service is the inventory service. It is safe for concurrent use.
type Service struct {
	db      *sql.DB
	barrier participant.Barrier
	xa      *shopxa.Endpoints
	log     *slog.Logger
	callv   *callsig.Verifier
}

// New returns the inventory service over db. Call Migrate before serving.
func New(db *sql.DB, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		db:      db,
		barrier: participant.Barrier{Dialect: cfg.Dialect, Table: BarrierTable},
		xa:      &shopxa.Endpoints{Service: "inventory", DB: db, Dialect: cfg.Dialect, Table: BarrierTable},
		log:     cfg.Logger.With("service", "inventory"),
		callv:   cfg.CallVerifier,
	}
}

// Migrate creates the inventory tables and the barrier table if needed.
func (s *Service) Migrate(ctx context.Context) error {
	err := shopdb.Exec(ctx, s.db,
		`CREATE TABLE IF NOT EXISTS products (
			id        BIGINT PRIMARY KEY,
			name      TEXT   NOT NULL,
			price     BIGINT NOT NULL CHECK (price >= 0),
			available BIGINT NOT NULL CHECK (available >= 0),
			reserved  BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
			sold      BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
			initial   BIGINT NOT NULL
		)`,
		// One row per (order, product): the record of what a deduct did,
		// which its compensation reverses.
		`CREATE TABLE IF NOT EXISTS deductions (
			order_id   BIGINT NOT NULL,
			product_id BIGINT NOT NULL,
			quantity   BIGINT NOT NULL,
			price      BIGINT NOT NULL,
			status     TEXT   NOT NULL,
			gid        TEXT   NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (order_id, product_id)
		)`,
		// TCC: one row per (order, product), RESERVED by the try, then
		// CONFIRMED or CANCELLED.
		`CREATE TABLE IF NOT EXISTS reservations (
			order_id   BIGINT NOT NULL,
			product_id BIGINT NOT NULL,
			quantity   BIGINT NOT NULL,
			price      BIGINT NOT NULL,
			status     TEXT   NOT NULL,
			gid        TEXT   NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (order_id, product_id)
		)`,
		`CREATE INDEX IF NOT EXISTS reservations_status ON reservations (status, created_at)`,
	)
	if err != nil {
		return fmt.Errorf("migrate inventory: %w", err)
	}
	if err := s.barrier.Migrate(ctx, s.db); err != nil {
		return err
	}
	return s.xa.Migrate(ctx)
}

// Seed inserts products if the products table is empty; it does nothing
// otherwise, so restarting a service keeps its stock. Initial is set to
// Available when zero.
func (s *Service) Seed(ctx context.Context, products []Product) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM products`).Scan(&n); err != nil {
		return fmt.Errorf("seed products: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, p := range products {
		if p.Initial == 0 {
			p.Initial = p.Available + p.Reserved + p.Sold
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO products (id, name, price, available, reserved, sold, initial) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			p.ID, p.Name, p.Price, p.Available, p.Reserved, p.Sold, p.Initial)
		if err != nil {
			return fmt.Errorf("seed product %d: %w", p.ID, err)
		}
	}
	return tx.Commit()
}

// Handler returns the service's HTTP routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for path, fn := range s.BranchHandlers() {
		mux.Handle("POST "+path, participant.Handler(fn, participant.RequireSignature(s.callv)))
	}
	mux.HandleFunc("GET "+PathProducts, s.handleList)
	mux.HandleFunc("GET "+PathProducts+"/{id}", s.handleGet)
	return mux
}

// BranchHandlers returns the service's branch operations (saga, TCC and XA
// steps) by path: Handler serves them over HTTP, and a shop running the
// saga-async pattern serves the saga's from broker topics
// (brokertransport.Serve), so both transports run the same code.
func (s *Service) BranchHandlers() map[string]participant.BranchFunc {
	return map[string]participant.BranchFunc{
		PathDeduct:         s.handleDeduct,
		PathDeductCancel:   s.handleCancel,
		PathReserve:        s.handleReserve,
		PathReserveConfirm: s.handleReserveConfirm,
		PathReserveCancel:  s.handleReserveCancel,
		PathXAPrepare:      s.handleXAPrepare,
		PathXACommit:       s.handleXACommit,
		PathXARollback:     s.handleXARollback,
	}
}

func (s *Service) handleDeduct(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return deduct(ctx, tx, br.GID, req)
	})
	if err != nil {
		return nil, err
	}
	// Read the total from the ledger rather than from the call above: a
	// duplicate call succeeds without running the deduct again.
	total, err := s.ledgerTotal(ctx, req.OrderID)
	if err != nil {
		return nil, err
	}
	return DeductResult{OrderID: req.OrderID, Total: total}, nil
}

func (s *Service) handleCancel(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return restore(ctx, tx, req.OrderID)
	})
	if err != nil {
		return nil, err
	}
	undone, err := s.undoneTotal(ctx, "deductions", req.OrderID)
	if err != nil {
		return nil, err
	}
	return CancelResult{OrderID: req.OrderID, TotalPrice: undone}, nil
}

// parseRequest decodes and checks a saga payload. A malformed payload is a
// definite failure: resending the same bytes cannot succeed.
func parseRequest(body []byte) (DeductRequest, error) {
	var req DeductRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, dtx.Permanentf("inventory: malformed payload: %v", err)
	}
	if req.OrderID <= 0 {
		return req, dtx.Permanentf("inventory: payload needs a positive order_id")
	}
	return req, nil
}

// deduct sells the items of one order inside tx. Items are merged per
// product and applied in product order, so concurrent multi-item deducts
// lock rows in the same order (no deadlocks on Postgres).
func deduct(ctx context.Context, tx shopxa.Querier, gid string, req DeductRequest) error {
	items, err := mergeItems(req.Items)
	if err != nil {
		return err
	}
	// A ledger for this order written under another gid means the order was
	// already sold (or sold and cancelled): never sell it twice.
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM deductions WHERE order_id = $1`, req.OrderID).Scan(&n); err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	if n > 0 {
		return dtx.Permanentf("inventory: order %d already has a deduction", req.OrderID)
	}
	now := time.Now().UnixMilli()
	for _, it := range items {
		var price int64
		err := tx.QueryRowContext(ctx,
			`UPDATE products SET available = available - $1, sold = sold + $1
			 WHERE id = $2 AND available >= $1
			 RETURNING price`, it.Quantity, it.ProductID).Scan(&price)
		if errors.Is(err, sql.ErrNoRows) {
			return whyNotDeducted(ctx, tx, it)
		}
		if err != nil {
			return fmt.Errorf("deduct product %d: %w", it.ProductID, err)
		}
		if it.Price != 0 && it.Price != price {
			return dtx.Permanentf("inventory: product %d costs %d, order was priced at %d", it.ProductID, price, it.Price)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO deductions (order_id, product_id, quantity, price, status, gid, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			req.OrderID, it.ProductID, it.Quantity, price, Deducted, gid, now)
		if err != nil {
			return fmt.Errorf("write ledger: %w", err)
		}
	}
	return nil
}

// whyNotDeducted explains a deduct that matched no row: unknown product or
// not enough stock. Both are definite failures.
func whyNotDeducted(ctx context.Context, tx shopxa.Querier, it Item) error {
	var available int64
	err := tx.QueryRowContext(ctx, `SELECT available FROM products WHERE id = $1`, it.ProductID).Scan(&available)
	if errors.Is(err, sql.ErrNoRows) {
		return dtx.Permanentf("inventory: unknown product %d", it.ProductID)
	}
	if err != nil {
		return fmt.Errorf("read product %d: %w", it.ProductID, err)
	}
	return dtx.Permanentf("inventory: insufficient stock for product %d: %d available, %d requested", it.ProductID, available, it.Quantity)
}

// restore reverses the live ledger rows of an order. With no live rows (the
// deduct never ran, or failed) it does nothing.
func restore(ctx context.Context, tx *sql.Tx, orderID int64) error {
	rows, err := tx.QueryContext(ctx,
		`SELECT product_id, quantity FROM deductions WHERE order_id = $1 AND status = $2 ORDER BY product_id`,
		orderID, Deducted)
	if err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	var items []Item
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.ProductID, &it.Quantity); err != nil {
			rows.Close()
			return fmt.Errorf("read ledger: %w", err)
		}
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	for _, it := range items {
		_, err := tx.ExecContext(ctx,
			`UPDATE products SET available = available + $1, sold = sold - $1 WHERE id = $2`,
			it.Quantity, it.ProductID)
		if err != nil {
			return fmt.Errorf("restore product %d: %w", it.ProductID, err)
		}
	}
	_, err = tx.ExecContext(ctx,
		`UPDATE deductions SET status = $1 WHERE order_id = $2 AND status = $3`,
		Cancelled, orderID, Deducted)
	if err != nil {
		return fmt.Errorf("cancel ledger: %w", err)
	}
	return nil
}

// mergeItems checks the items and sums quantities per product, sorted by
// product id.
func mergeItems(items []Item) ([]Item, error) {
	if len(items) == 0 {
		return nil, dtx.Permanentf("inventory: no items")
	}
	byID := map[int64]Item{}
	for _, it := range items {
		if it.ProductID <= 0 || it.Quantity <= 0 {
			return nil, dtx.Permanentf("inventory: invalid item (product %d, quantity %d)", it.ProductID, it.Quantity)
		}
		m, seen := byID[it.ProductID]
		if seen && m.Price != it.Price {
			return nil, dtx.Permanentf("inventory: product %d listed with two prices", it.ProductID)
		}
		m.ProductID, m.Price = it.ProductID, it.Price
		m.Quantity += it.Quantity
		byID[it.ProductID] = m
	}
	merged := make([]Item, 0, len(byID))
	for _, it := range byID {
		merged = append(merged, it)
	}
	slices.SortFunc(merged, func(a, b Item) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return merged, nil
}

// CancelResult is the answer of the inventory's cancel endpoints (the
// seeds' product cancel): TotalPrice is the price of the goods the order's
// cancel put back, 0 when there was nothing to undo (the deduct or try
// never ran or failed). A repeated cancel answers the same total: it is
// read from the ledger, not from what this one call moved.
type CancelResult struct {
	OrderID    int64 `json:"order_id"`
	TotalPrice int64 `json:"total_price"`
}

// undoneTotal is the price of the order's CANCELLED rows in table
// (deductions or reservations).
func (s *Service) undoneTotal(ctx context.Context, table string, orderID int64) (int64, error) {
	var total int64
	err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(quantity * price), 0) FROM `+table+` WHERE order_id = $1 AND status = $2`,
		orderID, Cancelled).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("read cancelled total: %w", err)
	}
	return total, nil
}

func (s *Service) ledgerTotal(ctx context.Context, orderID int64) (int64, error) {
	var total int64
	err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(quantity * price), 0) FROM deductions WHERE order_id = $1 AND status = $2`,
		orderID, Deducted).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("read ledger total: %w", err)
	}
	return total, nil
}

// Products returns all products ordered by id.
func (s *Service) Products(ctx context.Context) ([]Product, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, name, price, available, reserved, sold, initial FROM products ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	defer rows.Close()
	products := []Product{}
	for rows.Next() {
		var p Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Price, &p.Available, &p.Reserved, &p.Sold, &p.Initial); err != nil {
			return nil, fmt.Errorf("list products: %w", err)
		}
		products = append(products, p)
	}
	return products, rows.Err()
}

// Product returns one product, or sql.ErrNoRows.
func (s *Service) Product(ctx context.Context, id int64) (Product, error) {
	var p Product
	err := s.db.QueryRowContext(ctx,
		`SELECT id, name, price, available, reserved, sold, initial FROM products WHERE id = $1`, id).
		Scan(&p.ID, &p.Name, &p.Price, &p.Available, &p.Reserved, &p.Sold, &p.Initial)
	return p, err
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	products, err := s.Products(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "list products", "err", err)
		problem.Write(w, http.StatusInternalServerError, "cannot list products")
		return
	}
	participant.WriteJSON(w, http.StatusOK, products)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, "product id must be an integer")
		return
	}
	p, err := s.Product(r.Context(), id)
	if errors.Is(err, sql.ErrNoRows) {
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("no product %d", id))
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "get product", "id", id, "err", err)
		problem.Write(w, http.StatusInternalServerError, "cannot read product")
		return
	}
	participant.WriteJSON(w, http.StatusOK, p)
}
