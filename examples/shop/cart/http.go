package cart

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/problem"
)

// Problem types of the service's 4xx answers besides about:blank.
const (
	// TypeVersionConflict: the If-Match version is not the cart's (409).
	TypeVersionConflict = "urn:dtx:problem:version-conflict"
	// TypeCartState: the command does not apply to the cart as it is (409).
	TypeCartState = "urn:dtx:problem:cart-state"
	// TypeCartExists: POST /carts with the id of an existing cart (409).
	TypeCartExists = "urn:dtx:problem:cart-exists"
)

// maxBody bounds a command's body.
const maxBody = 64 << 10

// Handler returns the service's HTTP routes (see the package doc). A
// command takes the version the client saw in an If-Match header (the
// number, quoted or not) and answers 409 if the cart moved on; every
// answer about a cart carries its version as the ETag.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /carts", s.handleCreate)
	mux.HandleFunc("GET /carts/{id}", s.handleGet)
	mux.HandleFunc("GET /carts/{id}/events", s.handleEvents)
	mux.HandleFunc("POST /carts/{id}/items", s.handleAdd)
	mux.HandleFunc("DELETE /carts/{id}/items/{product}", s.handleRemove)
	mux.HandleFunc("PUT /carts/{id}/shipping", s.handleShipping)
	mux.HandleFunc("POST /carts/{id}/checkout", s.handleCheckout)
	mux.HandleFunc("GET /users/{id}/orders", s.handleHistory)
	mux.HandleFunc("GET /sales", s.handleSales)
	mux.HandleFunc("GET /projections", s.handleLag)
	return mux
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem.Write(w, http.StatusBadRequest, "malformed body: "+err.Error())
		return false
	}
	return true
}

// expected reads If-Match: AnyVersion when absent.
func expected(w http.ResponseWriter, r *http.Request) (int64, bool) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return eventstore.AnyVersion, true
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 0 {
		problem.Write(w, http.StatusBadRequest, "If-Match must be a cart version (a number >= 0)")
		return 0, false
	}
	return v, true
}

func writeError(w http.ResponseWriter, err error) {
	var ce *eventstore.ConflictError
	switch {
	case errors.As(err, &ce):
		problem.WriteType(w, http.StatusConflict, TypeVersionConflict, fmt.Sprintf("the cart is at version %d, not %d: reload it and try again", ce.Actual, ce.Expected))
	case errors.Is(err, ErrInvalid):
		problem.Write(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		problem.Write(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists):
		problem.WriteType(w, http.StatusConflict, TypeCartExists, err.Error())
	case errors.Is(err, ErrState):
		problem.WriteType(w, http.StatusConflict, TypeCartState, err.Error())
	case errors.Is(err, ErrRejected):
		problem.Write(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, ErrOrderService):
		problem.Write(w, http.StatusBadGateway, err.Error())
	default:
		problem.Write(w, http.StatusInternalServerError, err.Error())
	}
}

func writeCart(w http.ResponseWriter, status int, c Cart) {
	w.Header().Set("ETag", `"`+strconv.FormatInt(c.Version, 10)+`"`)
	problem.WriteJSON(w, status, c)
}

// CreateRequest is the body of POST /carts.
type CreateRequest struct {
	// ID is optional: the service picks one when empty.
	ID     string `json:"id,omitempty"`
	UserID int64  `json:"user_id"`
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.Create(r.Context(), req.ID, req.UserID)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/carts/"+c.ID)
	writeCart(w, http.StatusCreated, c)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeError(w, err)
		return
	}
	c, err := s.Load(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	if !c.Exists() {
		writeError(w, fmt.Errorf("%w: cart %q", ErrNotFound, id))
		return
	}
	writeCart(w, http.StatusOK, c)
}

// EventView is an event as GET /carts/{id}/events serves it.
type EventView struct {
	Position   int64           `json:"position"`
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// StreamView is the body of GET /carts/{id}/events.
type StreamView struct {
	Stream  string      `json:"stream"`
	Version int64       `json:"version"`
	Events  []EventView `json:"events"`
}

func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		writeError(w, err)
		return
	}
	evs, err := s.Events(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(evs) == 0 {
		writeError(w, fmt.Errorf("%w: cart %q", ErrNotFound, id))
		return
	}
	v := StreamView{Stream: Stream(id), Version: evs[len(evs)-1].Version, Events: make([]EventView, len(evs))}
	for i, e := range evs {
		v.Events[i] = EventView{Position: e.Position, Version: e.Version, Type: e.Type, Data: json.RawMessage(e.Data), RecordedAt: e.RecordedAt.UTC()}
	}
	problem.WriteJSON(w, http.StatusOK, v)
}

// ItemRequest is the body of POST /carts/{id}/items.
type ItemRequest struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

func (s *Service) handleAdd(w http.ResponseWriter, r *http.Request) {
	exp, ok := expected(w, r)
	if !ok {
		return
	}
	var req ItemRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.AddItem(r.Context(), r.PathValue("id"), exp, req.ProductID, req.Quantity)
	if err != nil {
		writeError(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleRemove(w http.ResponseWriter, r *http.Request) {
	exp, ok := expected(w, r)
	if !ok {
		return
	}
	p, err := strconv.ParseInt(r.PathValue("product"), 10, 64)
	if err != nil || p <= 0 {
		problem.Write(w, http.StatusBadRequest, "the product id must be a positive integer")
		return
	}
	c, err := s.RemoveItem(r.Context(), r.PathValue("id"), exp, p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleShipping(w http.ResponseWriter, r *http.Request) {
	exp, ok := expected(w, r)
	if !ok {
		return
	}
	var req Shipping
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.AddShipping(r.Context(), r.PathValue("id"), exp, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// CheckoutResult is the body of POST /carts/{id}/checkout.
type CheckoutResult struct {
	Cart  Cart         `json:"cart"`
	Order *order.Order `json:"order"`
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	exp, ok := expected(w, r)
	if !ok {
		return
	}
	c, o, err := s.Checkout(r.Context(), r.PathValue("id"), exp)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("ETag", `"`+strconv.FormatInt(c.Version, 10)+`"`)
	problem.WriteJSON(w, http.StatusOK, CheckoutResult{Cart: c, Order: o})
}

func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		problem.Write(w, http.StatusBadRequest, "the user id must be a positive integer")
		return
	}
	h, err := s.rm.History(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, h)
}

func (s *Service) handleSales(w http.ResponseWriter, r *http.Request) {
	sales, err := s.rm.Sales(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, sales)
}

// LagView is one projection in GET /projections.
type LagView struct {
	Name       string `json:"name"`
	Head       int64  `json:"head"`
	Checkpoint int64  `json:"checkpoint"`
	// Events not yet applied, and how long ago the oldest was recorded.
	Events    int64  `json:"events"`
	BehindMS  int64  `json:"behind_ms"`
	Applied   int64  `json:"applied"`
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

func (s *Service) handleLag(w http.ResponseWriter, r *http.Request) {
	l, err := s.rm.Lag(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	st := s.rm.Runner().Stats()
	problem.WriteJSON(w, http.StatusOK, []LagView{{Name: ProjectionName, Head: l.Head, Checkpoint: l.Checkpoint, Events: l.Events,
		BehindMS: l.Behind.Milliseconds(), Applied: st.Applied, Failures: st.Failures, LastError: st.LastError}})
}
