package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/participant"
)

// The seeds' own endpoints, served by Handler as thin aliases of Place:
// [003]'s create-then-place and [001]'s saga order endpoint.
const (
	// PathSeedCreate stores a draft order and answers {"orderId": id}.
	PathSeedCreate = "/order"
	// PathSeedPlace places a draft, keyed by its id.
	PathSeedPlace = "/order/place"
	// PathSeedSaga places one line and answers a result code.
	PathSeedSaga = "/saga/order"
)

// Result codes of PathSeedSaga, as [001] names them.
const (
	ResultSuccess         = "SUCCESS"
	ResultFailedOrder     = "FAILED_ORDER"
	ResultFailedInventory = "FAILED_INVENTORY"
	ResultFailedPayment   = "FAILED_PAYMENT"
	ResultPending         = "PENDING"
	seedDefaultUser       = 1 // [003] charges user 1
	seedDraftKeyPrefix    = "draft-"
)

// SeedItem is a line of [003]'s POST /order.
type SeedItem struct {
	ProductID int64 `json:"productId"`
	Quantity  int64 `json:"quantity"`
}

// SeedCreateRequest is the body of POST /order.
type SeedCreateRequest struct {
	OrderItems []SeedItem `json:"orderItems"`
	// UserID is optional (default 1, as in [003]).
	UserID int64 `json:"userId,omitempty"`
}

// SeedPlaceRequest is the body of POST /order/place.
type SeedPlaceRequest struct {
	OrderID int64 `json:"orderId"`
}

// SeedSagaRequest is the body of POST /saga/order. Price is accepted and
// ignored: the total is computed from the inventory's price list.
type SeedSagaRequest struct {
	UserID    int64 `json:"userId"`
	ProductID int64 `json:"productId"`
	Quantity  int64 `json:"quantity"`
	Price     int64 `json:"price,omitempty"`
}

func (s *Service) migrateSeed(ctx context.Context) error {
	return shopdb.Exec(ctx, s.db,
		`CREATE TABLE IF NOT EXISTS order_drafts (
			id         `+shopdb.AutoID(s.cfg.Dialect)+`,
			request    TEXT   NOT NULL,
			created_at BIGINT NOT NULL
		)`)
}

// CreateDraft validates and stores a draft order (not placed yet) and
// returns its id, the key PlaceDraft places it by.
func (s *Service) CreateDraft(ctx context.Context, req PlaceRequest) (int64, error) {
	if _, err := normalize(req); err != nil {
		return 0, err
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.db.QueryRowContext(ctx, `INSERT INTO order_drafts (request, created_at) VALUES ($1, $2) RETURNING id`,
		string(raw), time.Now().UnixMilli()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store draft order: %w", err)
	}
	return id, nil
}

// PlaceDraft places the draft id and waits for its outcome. The draft id
// is the order's idempotency key: placing it again, concurrently or
// later, answers the same order (a COMPLETED order is a no-op). With
// Config.Lock, a concurrent placement of the same draft is refused with
// ErrLocked while the first runs, as in [003].
func (s *Service) PlaceDraft(ctx context.Context, id int64) (*Placed, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT request FROM order_drafts WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: draft order %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read draft order %d: %w", id, err)
	}
	var req PlaceRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return nil, fmt.Errorf("read draft order %d: %w", id, err)
	}
	key := seedDraftKeyPrefix + strconv.FormatInt(id, 10)
	if s.cfg.Lock != nil {
		unlock, err := s.cfg.Lock.Lock(ctx, "order:"+strconv.FormatInt(id, 10))
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	return s.Place(ctx, req, key, true)
}

func (s *Service) handleSeedCreate(w http.ResponseWriter, r *http.Request) {
	var req SeedCreateRequest
	if !decodeSeed(w, r, &req) {
		return
	}
	p := PlaceRequest{UserID: req.UserID, Items: make([]Item, 0, len(req.OrderItems))}
	if p.UserID == 0 {
		p.UserID = seedDefaultUser
	}
	for _, it := range req.OrderItems {
		p.Items = append(p.Items, Item{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	id, err := s.CreateDraft(r.Context(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	participant.WriteJSON(w, http.StatusCreated, map[string]int64{"orderId": id})
}

func (s *Service) handleSeedPlace(w http.ResponseWriter, r *http.Request) {
	var req SeedPlaceRequest
	if !decodeSeed(w, r, &req) {
		return
	}
	if req.OrderID <= 0 {
		problem.Write(w, http.StatusBadRequest, "orderId must be positive")
		return
	}
	p, err := s.PlaceDraft(r.Context(), req.OrderID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOutcome(w, p)
}

func (s *Service) handleSeedSaga(w http.ResponseWriter, r *http.Request) {
	var req SeedSagaRequest
	if !decodeSeed(w, r, &req) {
		return
	}
	p, err := s.Place(r.Context(), PlaceRequest{UserID: req.UserID, Items: []Item{{ProductID: req.ProductID, Quantity: req.Quantity}}},
		r.Header.Get(HeaderIdempotencyKey), true)
	if err != nil {
		// The order was not created: [001]'s step 1 failed.
		status, detail := s.errorStatus(r, err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Dtx-Reason", sanitizeHeader(detail))
		w.WriteHeader(status)
		fmt.Fprint(w, ResultFailedOrder)
		return
	}
	code, status := SagaResult(p.Order)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Location", PathOrders+"/"+strconv.FormatInt(p.Order.ID, 10))
	if p.Order.Reason != "" {
		w.Header().Set("Dtx-Reason", sanitizeHeader(p.Order.Reason))
	}
	w.WriteHeader(status)
	fmt.Fprint(w, code)
}

// failedStep matches the coordinator's reason for a failed saga or TCC
// step: "step <i> (<name>) failed: ...", where a TCC or XA step's name
// is "<participant>.<phase>" (e.g. "payment.try").
var failedStep = regexp.MustCompile(`^step \d+ \(([a-z]+)(?:\.[a-z]+)?\) failed`)

// SagaResult maps an order to [001]'s result code and the HTTP status
// answered with it. SUCCESS only for a COMPLETED order; a CANCELLED
// order's code names the step the coordinator recorded as failed
// (inventory or payment; for a choreographed order, the service whose
// failure event cancelled it), FAILED_ORDER otherwise (for instance a
// timeout); a PENDING order answers PENDING with 202.
func SagaResult(o *Order) (code string, status int) {
	switch o.Status {
	case Completed:
		return ResultSuccess, http.StatusCreated
	case Pending:
		return ResultPending, http.StatusAccepted
	}
	step := ""
	if m := failedStep.FindStringSubmatch(o.Reason); m != nil {
		step = m[1]
	} else if o.Pattern == PatternChoreography {
		// No coordinator: the reason is the refusing service's own error,
		// carried by its failure event ("inventory: ...", "payment: ...").
		step, _, _ = strings.Cut(o.Reason, ": ")
	}
	switch step {
	case "inventory":
		return ResultFailedInventory, http.StatusConflict
	case "payment":
		return ResultFailedPayment, http.StatusConflict
	}
	return ResultFailedOrder, http.StatusConflict
}

// writeOutcome answers a placement by what happened: 201 COMPLETED (200
// when it was already placed), 409 problem+json with the reason when
// CANCELLED, 202 with a Location to poll while PENDING.
func writeOutcome(w http.ResponseWriter, p *Placed) {
	o := p.Order
	loc := PathOrders + "/" + strconv.FormatInt(o.ID, 10)
	switch o.Status {
	case Completed:
		w.Header().Set("Location", loc)
		status := http.StatusCreated
		if p.Replayed {
			status = http.StatusOK
		}
		participant.WriteJSON(w, status, o)
	case Cancelled:
		writeRefused(w, o)
	default:
		w.Header().Set("Location", loc)
		participant.WriteJSON(w, http.StatusAccepted, o)
	}
}

// TypeOrderRefused is the problem type of a 409 for an order the
// transaction cancelled (a business refusal: stock, payment); the body's
// "order" member is the cancelled order.
const TypeOrderRefused = "urn:dtx:problem:order-refused"

// Refusal is the problem+json body of a refused order.
type Refusal struct {
	problem.Details
	Order *Order `json:"order"`
}

func writeRefused(w http.ResponseWriter, o *Order) {
	w.Header().Set("Location", PathOrders+"/"+strconv.FormatInt(o.ID, 10))
	body, _ := json.Marshal(Refusal{
		Details: problem.Details{Type: TypeOrderRefused, Title: http.StatusText(http.StatusConflict), Status: http.StatusConflict,
			Detail: fmt.Sprintf("order %d cancelled: %s", o.ID, o.Reason)},
		Order: o,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusConflict)
	_, _ = w.Write(append(body, '\n'))
}

func decodeSeed(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem.Write(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func sanitizeHeader(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > 512 {
		b = b[:512]
	}
	return string(b)
}
