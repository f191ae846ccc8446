package payment

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	PathCharge       = "/payment/charge"
	PathChargeCancel = "/payment/charge/cancel"
	// TCC: try, confirm and cancel of a money reservation.
	PathReserve        = "/payment/reserve"
	PathReserveConfirm = "/payment/reserve/confirm"
	PathReserveCancel  = "/payment/reserve/cancel"
	// XA (two-phase commit): prepare, commit and roll back a charge.
	PathXAPrepare  = "/payment/xa/prepare"
	PathXACommit   = "/payment/xa/commit"
	PathXARollback = "/payment/xa/rollback"
	PathAccounts   = "/payment/accounts"
	PathPayments   = "/payment/payments"
)

// Payment states. A saga charge is CHARGED, then maybe REFUNDED. A TCC
// payment is RESERVED by its try, then CHARGED by its confirm or CANCELLED
// by its cancel. A refused charge or try is kept as DECLINED.
const (
	Charged   = "CHARGED"
	Refunded  = "REFUNDED"
	Declined  = "DECLINED"
	Reserved  = "RESERVED"
	Cancelled = "CANCELLED"
)

// DeclinedUserID is the user whose payments are always declined: the seeds'
// switch for exercising the compensation path.
const DeclinedUserID int64 = 2

// BarrierTable is the participant barrier table in the payment database.
const BarrierTable = "payment_barrier"

// ErrDeclined is wrapped (as a dtx.Permanent error) by every refused charge.
var ErrDeclined = errors.New("payment: declined")

// Account is one user's money. Amounts are integer cents.
type Account struct {
	UserID   int64 `json:"user_id"`
	Balance  int64 `json:"balance"`
	Reserved int64 `json:"reserved"`
	Spent    int64 `json:"spent"`
	Initial  int64 `json:"initial"`
}

// Payment is the payment of one order.
type Payment struct {
	OrderID int64  `json:"order_id"`
	UserID  int64  `json:"user_id"`
	Amount  int64  `json:"amount"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
}

// ChargeRequest is the payload of both saga endpoints.
type ChargeRequest struct {
	OrderID int64 `json:"order_id"`
	UserID  int64 `json:"user_id"`
	Amount  int64 `json:"amount"`
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

// Service is the payment service. It is safe for concurrent use.
type Service struct {
	db      *sql.DB
	barrier participant.Barrier
	xa      *shopxa.Endpoints
	log     *slog.Logger
	callv   *callsig.Verifier
}

// New returns the payment service over db. Call Migrate before serving.
func New(db *sql.DB, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		db:      db,
		barrier: participant.Barrier{Dialect: cfg.Dialect, Table: BarrierTable},
		xa:      &shopxa.Endpoints{Service: "payment", DB: db, Dialect: cfg.Dialect, Table: BarrierTable},
		log:     cfg.Logger.With("service", "payment"),
		callv:   cfg.CallVerifier,
	}
}

// Migrate creates the payment tables and the barrier table if needed.
func (s *Service) Migrate(ctx context.Context) error {
	err := shopdb.Exec(ctx, s.db,
		`CREATE TABLE IF NOT EXISTS accounts (
			user_id  BIGINT PRIMARY KEY,
			balance  BIGINT NOT NULL CHECK (balance >= 0),
			reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
			spent    BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
			initial  BIGINT NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS payments (
			order_id   BIGINT PRIMARY KEY,
			user_id    BIGINT NOT NULL,
			amount     BIGINT NOT NULL,
			status     TEXT   NOT NULL,
			reason     TEXT   NOT NULL DEFAULT '',
			gid        TEXT   NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
	)
	if err != nil {
		return fmt.Errorf("migrate payment: %w", err)
	}
	if err := s.barrier.Migrate(ctx, s.db); err != nil {
		return err
	}
	return s.xa.Migrate(ctx)
}

// Seed inserts accounts if the accounts table is empty; it does nothing
// otherwise. Initial is set to Balance when zero.
func (s *Service) Seed(ctx context.Context, accounts []Account) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		return fmt.Errorf("seed accounts: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, a := range accounts {
		if a.Initial == 0 {
			a.Initial = a.Balance + a.Reserved + a.Spent
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO accounts (user_id, balance, reserved, spent, initial) VALUES ($1, $2, $3, $4, $5)`,
			a.UserID, a.Balance, a.Reserved, a.Spent, a.Initial)
		if err != nil {
			return fmt.Errorf("seed account %d: %w", a.UserID, err)
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
	mux.HandleFunc("GET "+PathAccounts, s.handleAccounts)
	mux.HandleFunc("GET "+PathPayments+"/{order}", s.handlePayment)
	return mux
}

// BranchHandlers returns the service's branch operations (saga, TCC and XA
// steps) by path: Handler serves them over HTTP, and a shop running the
// saga-async pattern serves the saga's from broker topics
// (brokertransport.Serve), so both transports run the same code.
func (s *Service) BranchHandlers() map[string]participant.BranchFunc {
	return map[string]participant.BranchFunc{
		PathCharge:         s.handleCharge,
		PathChargeCancel:   s.handleCancel,
		PathReserve:        s.handleReserve,
		PathReserveConfirm: s.handleReserveConfirm,
		PathReserveCancel:  s.handleReserveCancel,
		PathXAPrepare:      s.handleXAPrepare,
		PathXACommit:       s.handleXACommit,
		PathXARollback:     s.handleXARollback,
	}
}

func (s *Service) handleCharge(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return charge(ctx, tx, br.GID, req)
	})
	if errors.Is(err, ErrDeclined) {
		// The barrier rolled the charge back; keep the refusal as history in
		// its own transaction. It never overwrites a real payment.
		s.recordDecline(ctx, br.GID, req, err)
	}
	if err != nil {
		return nil, err
	}
	// Read the payment back: a duplicate call succeeds without charging.
	return s.Payment(ctx, req.OrderID)
}

func (s *Service) handleCancel(ctx context.Context, br participant.Branch, body []byte) (any, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	err = s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
		return refund(ctx, tx, req.OrderID)
	})
	if err != nil {
		return nil, err
	}
	return s.cancelResult(ctx, req.OrderID, Refunded)
}

// CancelResult is the answer of the payment's cancel endpoints: TotalPrice
// is the amount the order's cancel gave back, 0 when there was nothing to
// undo (never charged or reserved, or declined). A repeated cancel answers
// the same amount.
type CancelResult struct {
	OrderID    int64 `json:"order_id"`
	TotalPrice int64 `json:"total_price"`
}

// cancelResult reads what the order's cancel undid: the amount of its
// payment if that is in status undone.
func (s *Service) cancelResult(ctx context.Context, orderID int64, undone string) (CancelResult, error) {
	var total int64
	err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(amount), 0) FROM payments WHERE order_id = $1 AND status = $2`,
		orderID, undone).Scan(&total)
	if err != nil {
		return CancelResult{}, fmt.Errorf("read undone payment: %w", err)
	}
	return CancelResult{OrderID: orderID, TotalPrice: total}, nil
}

func parseRequest(body []byte) (ChargeRequest, error) {
	var req ChargeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, dtx.Permanentf("payment: malformed payload: %v", err)
	}
	if req.OrderID <= 0 {
		return req, dtx.Permanentf("payment: payload needs a positive order_id")
	}
	return req, nil
}

// charge takes the amount from the user's balance and records the payment.
func charge(ctx context.Context, tx shopxa.Querier, gid string, req ChargeRequest) error {
	if req.Amount < 0 {
		return dtx.Permanentf("payment: negative amount %d", req.Amount)
	}
	if req.UserID == DeclinedUserID {
		return dtx.Permanent(fmt.Errorf("%w: user %d is not allowed to pay", ErrDeclined, req.UserID))
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE accounts SET balance = balance - $1, spent = spent + $1 WHERE user_id = $2 AND balance >= $1`,
		req.Amount, req.UserID)
	if err != nil {
		return fmt.Errorf("charge user %d: %w", req.UserID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return whyDeclined(ctx, tx, req)
	}
	// A DECLINED row left by an earlier attempt is replaced; any other row
	// means the order was already paid under another gid.
	now := time.Now().UnixMilli()
	res, err = tx.ExecContext(ctx,
		`INSERT INTO payments (order_id, user_id, amount, status, reason, gid, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, '', $5, $6, $6)
		 ON CONFLICT (order_id) DO UPDATE
		 SET user_id = excluded.user_id, amount = excluded.amount, status = excluded.status,
		     reason = '', gid = excluded.gid, updated_at = excluded.updated_at
		 WHERE payments.status = $7`,
		req.OrderID, req.UserID, req.Amount, Charged, gid, now, Declined)
	if err != nil {
		return fmt.Errorf("record payment: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return dtx.Permanentf("payment: order %d is already paid", req.OrderID)
	}
	return nil
}

func whyDeclined(ctx context.Context, tx shopxa.Querier, req ChargeRequest) error {
	var balance int64
	err := tx.QueryRowContext(ctx, `SELECT balance FROM accounts WHERE user_id = $1`, req.UserID).Scan(&balance)
	if errors.Is(err, sql.ErrNoRows) {
		return dtx.Permanent(fmt.Errorf("%w: no account for user %d", ErrDeclined, req.UserID))
	}
	if err != nil {
		return fmt.Errorf("read account %d: %w", req.UserID, err)
	}
	return dtx.Permanent(fmt.Errorf("%w: insufficient balance for user %d: %d available, %d requested",
		ErrDeclined, req.UserID, balance, req.Amount))
}

// refund reverses the CHARGED payment of an order, if there is one.
func refund(ctx context.Context, tx *sql.Tx, orderID int64) error {
	var userID, amount int64
	err := tx.QueryRowContext(ctx,
		`SELECT user_id, amount FROM payments WHERE order_id = $1 AND status = $2`,
		orderID, Charged).Scan(&userID, &amount)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // never charged (or declined): nothing to undo
	}
	if err != nil {
		return fmt.Errorf("read payment: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE accounts SET balance = balance + $1, spent = spent - $1 WHERE user_id = $2`,
		amount, userID); err != nil {
		return fmt.Errorf("refund user %d: %w", userID, err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE payments SET status = $1, updated_at = $2 WHERE order_id = $3`,
		Refunded, time.Now().UnixMilli(), orderID); err != nil {
		return fmt.Errorf("mark refunded: %w", err)
	}
	return nil
}

func (s *Service) recordDecline(ctx context.Context, gid string, req ChargeRequest, reason error) {
	if err := insertDecline(ctx, s.db, gid, req, reason); err != nil {
		// History only: the refusal itself has been decided and is answered.
		s.log.WarnContext(ctx, "record declined payment", "order_id", req.OrderID, "err", err)
	}
}

// insertDecline keeps a refused charge as a DECLINED payment with its
// reason. It never overwrites a payment the order already has.
func insertDecline(ctx context.Context, q shopxa.Querier, gid string, req ChargeRequest, reason error) error {
	now := time.Now().UnixMilli()
	_, err := q.ExecContext(ctx,
		`INSERT INTO payments (order_id, user_id, amount, status, reason, gid, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		 ON CONFLICT (order_id) DO NOTHING`,
		req.OrderID, req.UserID, req.Amount, Declined, reason.Error(), gid, now)
	return err
}

// Payment returns the payment of an order, or sql.ErrNoRows.
func (s *Service) Payment(ctx context.Context, orderID int64) (Payment, error) {
	var p Payment
	err := s.db.QueryRowContext(ctx,
		`SELECT order_id, user_id, amount, status, reason FROM payments WHERE order_id = $1`, orderID).
		Scan(&p.OrderID, &p.UserID, &p.Amount, &p.Status, &p.Reason)
	if err != nil {
		return p, fmt.Errorf("read payment of order %d: %w", orderID, err)
	}
	return p, nil
}

// Accounts returns all accounts ordered by user id.
func (s *Service) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT user_id, balance, reserved, spent, initial FROM accounts ORDER BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	accounts := []Account{}
	for rows.Next() {
		var a Account
		if err := rows.Scan(&a.UserID, &a.Balance, &a.Reserved, &a.Spent, &a.Initial); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	return accounts, rows.Err()
}

func (s *Service) handleAccounts(w http.ResponseWriter, r *http.Request) {
	accounts, err := s.Accounts(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "list accounts", "err", err)
		problem.Write(w, http.StatusInternalServerError, "cannot list accounts")
		return
	}
	participant.WriteJSON(w, http.StatusOK, accounts)
}

func (s *Service) handlePayment(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("order"), 10, 64)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, "order id must be an integer")
		return
	}
	p, err := s.Payment(r.Context(), id)
	if errors.Is(err, sql.ErrNoRows) {
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("no payment for order %d", id))
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "get payment", "order_id", id, "err", err)
		problem.Write(w, http.StatusInternalServerError, "cannot read payment")
		return
	}
	participant.WriteJSON(w, http.StatusOK, p)
}
