package order

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// Status is the state of an order.
type Status string

// Order states. PENDING moves once, to COMPLETED or CANCELLED.
const (
	Pending   Status = "PENDING"
	Completed Status = "COMPLETED"
	Cancelled Status = "CANCELLED"
)

// Valid reports whether s is a known state.
func (s Status) Valid() bool { return s == Pending || s == Completed || s == Cancelled }

// Transaction patterns an order can be fulfilled with (Config.Pattern).
const (
	// PatternSaga: deduct stock, charge, compensate on failure.
	PatternSaga = "saga"
	// PatternTCC: reserve stock and money (try), then confirm or cancel.
	PatternTCC = "tcc"
	// PatternXA: two-phase commit; the inventory and payment prepare their
	// changes as XA branches of their own databases (PostgreSQL or MySQL),
	// then commit or roll them back.
	PatternXA = "xa"
	// PatternChoreography: no coordinator; the order is published as an
	// event (through the order database's outbox) and the services react
	// to each other's events (package events).
	PatternChoreography = "choreography"
	// PatternSagaAsync: the saga of PatternSaga, orchestrated over a
	// broker: its steps are broker://<topic> URLs (SagaTopic of each
	// step's path), so the coordinator sends commands and receives replies
	// as messages instead of HTTP calls (see SagaSpec).
	PatternSagaAsync = "saga-async"
)

// Patterns lists the patterns an order can be fulfilled with.
var Patterns = []string{PatternSaga, PatternTCC, PatternXA, PatternChoreography, PatternSagaAsync}

// Limits on an order request.
const (
	MaxItems    = 100
	MaxQuantity = 1_000_000
)

// Defaults for Config.
const (
	DefaultWaitTimeout      = 30 * time.Second
	DefaultResubmitInterval = time.Second
	DefaultResubmitAfter    = 5 * time.Second
)

// Errors returned by Service.Place and Service.Get.
var (
	// ErrInvalid: the request is malformed (HTTP 400).
	ErrInvalid = errors.New("order: invalid request")
	// ErrKeyReused: the Idempotency-Key was used for a different request (HTTP 409).
	ErrKeyReused = errors.New("order: idempotency key already used for a different request")
	// ErrNotFound: no such order (HTTP 404).
	ErrNotFound = errors.New("order: not found")
	// ErrPricesUnavailable: the inventory's price list cannot be read (HTTP 503).
	ErrPricesUnavailable = errors.New("order: price list unavailable")
	// ErrLocked: another request is placing the same order (HTTP 409).
	ErrLocked = errors.New("order: placement of this order already in progress")
	// ErrLockUnavailable: the lock service cannot be reached (HTTP 503).
	ErrLockUnavailable = errors.New("order: lock service unavailable")
)

// Item is one line of an order.
type Item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
	// Price is the unit price in cents. The service sets it from the
	// inventory's price list; a price sent by the client is ignored.
	Price int64 `json:"price,omitempty"`
}

// Order is an order as stored and served.
type Order struct {
	ID     int64  `json:"id"`
	UserID int64  `json:"user_id"`
	Total  int64  `json:"total"`
	Status Status `json:"status"`
	// Reason says why an order was cancelled.
	Reason string `json:"reason,omitempty"`
	GID    string `json:"gid"`
	// Pattern is how the order is fulfilled: one of Patterns.
	Pattern   string    `json:"pattern"`
	Items     []Item    `json:"items"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	digest string // of the request, to check Idempotency-Key reuse
}

// PlaceRequest is the body of POST /orders.
type PlaceRequest struct {
	UserID int64  `json:"user_id"`
	Items  []Item `json:"items"`
}

// Placed is the result of Service.Place.
type Placed struct {
	Order *Order
	// Replayed: an earlier order with the same Idempotency-Key was returned.
	Replayed bool
	// Submitted: the coordinator accepted the saga (and, when waiting, it
	// finished).
	Submitted bool
}

// Coordinator submits sagas and TCC transactions. The dtx client
// (*client.Client) implements it.
type Coordinator interface {
	// SubmitSaga submits spec; resubmitting the same gid and content is
	// accepted again, other content with the same gid fails with
	// dtx.ErrConflict. With wait, it returns once the saga has finished (or
	// ctx is done).
	SubmitSaga(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error)
	// SubmitTCC submits a TCC transaction, with the same rules.
	SubmitTCC(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error)
	// SubmitXA submits a two-phase commit transaction, with the same rules.
	SubmitXA(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error)
}

// CoordinatorFunc adapts a function to Coordinator (handy in tests). A TCC
// transaction is passed to f as the saga that drives it (tcc.Spec.Saga).
type CoordinatorFunc func(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error)

// SubmitSaga calls f.
func (f CoordinatorFunc) SubmitSaga(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
	return f(ctx, spec, wait)
}

// SubmitTCC calls f with the saga of spec.
func (f CoordinatorFunc) SubmitTCC(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	sg, err := spec.Saga()
	if err != nil {
		return nil, err
	}
	return f(ctx, sg, wait)
}

// SubmitXA calls f with the saga of spec, tries in order.
func (f CoordinatorFunc) SubmitXA(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	spec.Sequential = true
	return f.SubmitTCC(ctx, spec, wait)
}

// Config configures a Service.
type Config struct {
	// Dialect of the database (default appdb.SQLite).
	Dialect appdb.Dialect
	// URL is this service's own base URL, used by the saga's order steps.
	// Required.
	URL string
	// InventoryURL and PaymentURL are the participants' base URLs. Required.
	InventoryURL string
	PaymentURL   string
	// Coordinator runs the sagas. Required, except for the choreography
	// pattern.
	Coordinator Coordinator
	// Pattern is how new orders are fulfilled (one of Patterns; default
	// PatternSaga). Each order stores its pattern, so orders placed before
	// a change keep theirs when resubmitted.
	Pattern string
	// OnPlace, required by PatternChoreography, publishes a new order from
	// inside the transaction that stores it (typically: an outbox.Add of
	// its OrderPlaced event).
	OnPlace func(ctx context.Context, tx *sql.Tx, o *Order) error
	// AfterPlace, if set, is called once such an order is committed (e.g.
	// to wake the outbox relay).
	AfterPlace func(o *Order)
	// SagaTimeout and BranchTimeout go into every saga spec (zero: the
	// coordinator's defaults).
	SagaTimeout   time.Duration
	BranchTimeout time.Duration
	// SequentialTCC runs a TCC order's tries, then its confirms, one after
	// another in the seeds' order (inventory, then payment) instead of in
	// parallel: a failing inventory try never calls the payment service.
	SequentialTCC bool
	// TCCOnConfirmFailure is the TCC orders' on_confirm_failure policy
	// (seed F9): tcc.ConfirmRetry ("retry", the default: the coordinator
	// retries a failed confirm until it succeeds) or tcc.ConfirmOperator
	// ("operator": a failed confirm waits for an operator's retry, the
	// order stays PENDING and is listed under attention).
	TCCOnConfirmFailure string
	// WaitTimeout bounds a POST /orders?wait=true (default DefaultWaitTimeout).
	WaitTimeout time.Duration
	// ResubmitInterval is how often Run looks for PENDING orders (default
	// DefaultResubmitInterval).
	ResubmitInterval time.Duration
	// ResubmitAfter is how long an order stays PENDING after its last
	// submission before Run submits it again (default DefaultResubmitAfter).
	ResubmitAfter time.Duration
	// HTTPClient reads the inventory's price list (default: 5s timeout).
	HTTPClient *http.Client
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// CallVerifier, if set, makes Handler refuse (401) branch calls not
	// signed by the coordinator (participant.RequireSignature).
	CallVerifier *callsig.Verifier
	// Lock, if set, guards each placement of a draft order (POST
	// /order/place) with a lock on "order:{id}": a concurrent placement of
	// the same order is refused with ErrLocked (HTTP 409), as in [003].
	Lock Locker
}

// Locker takes exclusive locks by key. Lock returns ErrLocked when
// another holder has key, and an unlock function that releases only this
// holder's lock.
type Locker interface {
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// Service is the order service. It is safe for concurrent use.
type Service struct {
	db     *sql.DB
	cfg    Config
	prices *priceList
	log    *slog.Logger
}

// New returns the order service over db. Call Migrate before serving.
func New(db *sql.DB, cfg Config) (*Service, error) {
	var errs []error
	for name, u := range map[string]string{"URL": cfg.URL, "InventoryURL": cfg.InventoryURL, "PaymentURL": cfg.PaymentURL} {
		if u == "" {
			errs = append(errs, fmt.Errorf("order: Config.%s is required", name))
		}
	}
	if cfg.Pattern == PatternChoreography && cfg.OnPlace == nil {
		errs = append(errs, errors.New("order: the choreography pattern needs Config.OnPlace (publish the order)"))
	}
	if cfg.Coordinator == nil && cfg.Pattern != PatternChoreography {
		errs = append(errs, errors.New("order: Config.Coordinator is required"))
	}
	cfg.Pattern = cmp.Or(cfg.Pattern, PatternSaga)
	if !slices.Contains(Patterns, cfg.Pattern) {
		errs = append(errs, fmt.Errorf("order: Config.Pattern %q: want one of %s", cfg.Pattern, strings.Join(Patterns, ", ")))
	}
	switch cfg.TCCOnConfirmFailure {
	case "", tcc.ConfirmRetry, tcc.ConfirmOperator:
	default:
		errs = append(errs, fmt.Errorf("order: Config.TCCOnConfirmFailure %q: want %s or %s", cfg.TCCOnConfirmFailure, tcc.ConfirmRetry, tcc.ConfirmOperator))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	cfg.InventoryURL = strings.TrimSuffix(cfg.InventoryURL, "/")
	cfg.PaymentURL = strings.TrimSuffix(cfg.PaymentURL, "/")
	cfg.WaitTimeout = cmp.Or(cfg.WaitTimeout, DefaultWaitTimeout)
	cfg.ResubmitInterval = cmp.Or(cfg.ResubmitInterval, DefaultResubmitInterval)
	cfg.ResubmitAfter = cmp.Or(cfg.ResubmitAfter, DefaultResubmitAfter)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		db:     db,
		cfg:    cfg,
		prices: &priceList{client: cfg.HTTPClient, url: cfg.InventoryURL + "/inventory/products"},
		log:    cfg.Logger.With("service", "order"),
	}, nil
}

// Migrate creates the order tables if needed.
func (s *Service) Migrate(ctx context.Context) error {
	err := shopdb.Exec(ctx, s.db,
		`CREATE TABLE IF NOT EXISTS orders (
			id             `+shopdb.AutoID(s.cfg.Dialect)+`,
			idem_key       TEXT UNIQUE,
			request_digest TEXT   NOT NULL,
			user_id        BIGINT NOT NULL,
			total          BIGINT NOT NULL,
			status         TEXT   NOT NULL,
			reason         TEXT   NOT NULL DEFAULT '',
			gid            TEXT   NOT NULL DEFAULT '',
			pattern        TEXT   NOT NULL DEFAULT 'saga',
			submitted_at   BIGINT NOT NULL DEFAULT 0,
			created_at     BIGINT NOT NULL,
			updated_at     BIGINT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS orders_status ON orders (status, submitted_at)`,
		`CREATE TABLE IF NOT EXISTS order_items (
			order_id   BIGINT NOT NULL REFERENCES orders (id),
			product_id BIGINT NOT NULL,
			quantity   BIGINT NOT NULL,
			price      BIGINT NOT NULL,
			PRIMARY KEY (order_id, product_id)
		)`,
	)
	if err != nil {
		return fmt.Errorf("migrate order: %w", err)
	}
	if err := s.migrateSeed(ctx); err != nil {
		return fmt.Errorf("migrate order: %w", err)
	}
	// Databases created before the TCC pattern lack orders.pattern. (Not in
	// the transaction above: on Postgres a failed probe aborts it.)
	if _, err := s.db.ExecContext(ctx, `SELECT pattern FROM orders WHERE 1 = 0`); err != nil {
		if _, err := s.db.ExecContext(ctx, `ALTER TABLE orders ADD COLUMN pattern TEXT NOT NULL DEFAULT 'saga'`); err != nil {
			return fmt.Errorf("migrate order: add orders.pattern: %w", err)
		}
	}
	return nil
}

// Place validates and stores an order, then submits its saga. idemKey may
// be empty. With wait, Place returns once the saga has finished or
// Config.WaitTimeout has passed.
//
// Errors: ErrInvalid, ErrKeyReused, ErrPricesUnavailable, or a database
// error. A coordinator failure is not an error: the order is returned
// PENDING with Submitted false, and Run will submit it later.
func (s *Service) Place(ctx context.Context, req PlaceRequest, idemKey string, wait bool) (*Placed, error) {
	items, err := normalize(req)
	if err != nil {
		return nil, err
	}
	digest := requestDigest(req.UserID, items)
	if idemKey != "" {
		o, err := s.byKey(ctx, idemKey)
		if err == nil {
			return s.replay(ctx, o, digest, wait)
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if err := s.prices.fill(ctx, items); err != nil {
		return nil, err
	}
	o := &Order{UserID: req.UserID, Status: Pending, Pattern: s.cfg.Pattern, Items: items, digest: digest}
	for _, it := range items {
		o.Total += it.Price * it.Quantity
	}
	if err := s.insert(ctx, o, idemKey); err != nil {
		if idemKey == "" {
			return nil, err
		}
		// Most likely a concurrent request with the same key won the
		// unique index: answer with its order.
		first, kerr := s.byKey(ctx, idemKey)
		if kerr != nil {
			return nil, err
		}
		return s.replay(ctx, first, digest, wait)
	}
	submitted := s.submit(ctx, o, wait)
	if o, err = s.Get(ctx, o.ID); err != nil {
		return nil, err
	}
	return &Placed{Order: o, Submitted: submitted}, nil
}

// replay answers a request whose Idempotency-Key is already stored.
func (s *Service) replay(ctx context.Context, o *Order, digest string, wait bool) (*Placed, error) {
	if o.digest != digest {
		return nil, fmt.Errorf("%w (order %d)", ErrKeyReused, o.ID)
	}
	p := &Placed{Order: o, Replayed: true, Submitted: true}
	if o.Status == Pending {
		// Resubmitting is idempotent, and covers a first attempt whose
		// submission failed.
		p.Submitted = s.submit(ctx, o, wait)
		var err error
		if p.Order, err = s.Get(ctx, o.ID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// normalize checks a request and merges its items per product, sorted by
// product id. Client prices are dropped.
func normalize(req PlaceRequest) ([]Item, error) {
	if req.UserID <= 0 {
		return nil, fmt.Errorf("%w: user_id must be positive", ErrInvalid)
	}
	if len(req.Items) == 0 {
		return nil, fmt.Errorf("%w: an order needs at least one item", ErrInvalid)
	}
	if len(req.Items) > MaxItems {
		return nil, fmt.Errorf("%w: at most %d items", ErrInvalid, MaxItems)
	}
	qty := map[int64]int64{}
	for i, it := range req.Items {
		if it.ProductID <= 0 {
			return nil, fmt.Errorf("%w: item %d: product_id must be positive", ErrInvalid, i)
		}
		if it.Quantity <= 0 || it.Quantity > MaxQuantity {
			return nil, fmt.Errorf("%w: item %d: quantity must be between 1 and %d", ErrInvalid, i, MaxQuantity)
		}
		qty[it.ProductID] += it.Quantity
		if qty[it.ProductID] > MaxQuantity {
			return nil, fmt.Errorf("%w: product %d: quantity must be at most %d", ErrInvalid, it.ProductID, MaxQuantity)
		}
	}
	items := make([]Item, 0, len(qty))
	for id, q := range qty {
		items = append(items, Item{ProductID: id, Quantity: q})
	}
	slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return items, nil
}

// requestDigest identifies what was asked for, so that a reused
// Idempotency-Key can be told apart from a retry.
func requestDigest(userID int64, items []Item) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(userID, 10))
	for _, it := range items {
		fmt.Fprintf(&b, ";%d:%d", it.ProductID, it.Quantity)
	}
	h := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(h[:16])
}

// insert stores a new order and its items in one transaction and sets o.ID,
// o.GID and the timestamps.
func (s *Service) insert(ctx context.Context, o *Order, idemKey string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	defer tx.Rollback()
	var key any // NULL when there is no key: NULLs never collide
	if idemKey != "" {
		key = idemKey
	}
	now := time.Now()
	err = tx.QueryRowContext(ctx,
		`INSERT INTO orders (idem_key, request_digest, user_id, total, status, pattern, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
		key, o.digest, o.UserID, o.Total, o.Status, o.Pattern, now.UnixMilli()).Scan(&o.ID)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	o.GID = GID(o.ID)
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET gid = $1 WHERE id = $2`, o.GID, o.ID); err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	if o.Pattern == PatternChoreography {
		// Published in the same transaction (an outbox): an order exists
		// if and only if its OrderPlaced event will be delivered.
		if err := s.cfg.OnPlace(ctx, tx, o); err != nil {
			return fmt.Errorf("publish order: %w", err)
		}
	}
	for _, it := range o.Items {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO order_items (order_id, product_id, quantity, price) VALUES ($1, $2, $3, $4)`,
			o.ID, it.ProductID, it.Quantity, it.Price)
		if err != nil {
			return fmt.Errorf("insert order item: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	o.CreatedAt, o.UpdatedAt = now, now
	if o.Pattern == PatternChoreography && s.cfg.AfterPlace != nil {
		s.cfg.AfterPlace(o)
	}
	return nil
}

// GID is the global transaction id of an order's saga.
func GID(orderID int64) string { return "order-" + strconv.FormatInt(orderID, 10) }

const orderColumns = `id, user_id, total, status, reason, gid, pattern, request_digest, created_at, updated_at`

func scanOrder(row interface{ Scan(...any) error }) (*Order, error) {
	var o Order
	var created, updated int64
	err := row.Scan(&o.ID, &o.UserID, &o.Total, &o.Status, &o.Reason, &o.GID, &o.Pattern, &o.digest, &created, &updated)
	if err != nil {
		return nil, err
	}
	o.CreatedAt, o.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &o, nil
}

// Get returns an order with its items, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id int64) (*Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read order %d: %w", id, err)
	}
	if err := s.loadItems(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

func (s *Service) byKey(ctx context.Context, key string) (*Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE idem_key = $1`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read order by key: %w", err)
	}
	if err := s.loadItems(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

func (s *Service) loadItems(ctx context.Context, o *Order) error {
	rows, err := s.db.QueryContext(ctx,
		`SELECT product_id, quantity, price FROM order_items WHERE order_id = $1 ORDER BY product_id`, o.ID)
	if err != nil {
		return fmt.Errorf("read items of order %d: %w", o.ID, err)
	}
	defer rows.Close()
	o.Items = []Item{}
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.ProductID, &it.Quantity, &it.Price); err != nil {
			return fmt.Errorf("read items of order %d: %w", o.ID, err)
		}
		o.Items = append(o.Items, it)
	}
	return rows.Err()
}

// List returns the orders in status (all when empty), oldest first, with
// their items.
func (s *Service) List(ctx context.Context, status Status) ([]*Order, error) {
	q := `SELECT ` + orderColumns + ` FROM orders`
	var args []any
	if status != "" {
		q += ` WHERE status = $1`
		args = append(args, status)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	orders := []*Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list orders: %w", err)
		}
		orders = append(orders, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	for _, o := range orders {
		if err := s.loadItems(ctx, o); err != nil {
			return nil, err
		}
	}
	return orders, nil
}
