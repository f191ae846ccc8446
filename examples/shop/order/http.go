package order

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/participant"
)

// Paths served by Handler (besides the saga steps).
const PathOrders = "/orders"

// HeaderIdempotencyKey carries the client's idempotency key.
const HeaderIdempotencyKey = "Idempotency-Key"

// maxBody bounds a POST /orders body.
const maxBody = 1 << 20

// Handler returns the service's HTTP routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathOrders, s.handlePlace)
	mux.HandleFunc("GET "+PathOrders, s.handleList)
	mux.HandleFunc("GET "+PathOrders+"/{id}", s.handleGet)
	mux.HandleFunc("POST "+PathSeedCreate, s.handleSeedCreate)
	mux.HandleFunc("POST "+PathSeedPlace, s.handleSeedPlace)
	mux.HandleFunc("POST "+PathSeedSaga, s.handleSeedSaga)
	for path, fn := range s.BranchHandlers() {
		mux.Handle("POST "+path, participant.Handler(fn, participant.RequireSignature(s.cfg.CallVerifier)))
	}
	return mux
}

// BranchHandlers returns the service's branch operations (the saga's and
// TCC's order steps) by path: Handler serves them over HTTP, and under
// PatternSagaAsync they are served from the broker topic SagaTopic(path)
// (brokertransport.Serve), so both transports run the same code.
func (s *Service) BranchHandlers() map[string]participant.BranchFunc {
	return map[string]participant.BranchFunc{
		PathSagaComplete: s.complete,
		PathSagaCancel:   s.cancel,
	}
}

func (s *Service) handlePlace(w http.ResponseWriter, r *http.Request) {
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		var err error
		if wait, err = strconv.ParseBool(v); err != nil {
			problem.Write(w, http.StatusBadRequest, "wait must be true or false")
			return
		}
	}
	var req PlaceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem.Write(w, http.StatusBadRequest, "malformed order: "+err.Error())
		return
	}
	p, err := s.Place(r.Context(), req, r.Header.Get(HeaderIdempotencyKey), wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if p.Replayed {
		status = http.StatusOK
	}
	if !p.Submitted {
		status = http.StatusAccepted // stored; the saga will be (re)submitted
	}
	if wait {
		// The caller waited for the outcome: the status says it.
		switch p.Order.Status {
		case Cancelled:
			writeRefused(w, p.Order)
			return
		case Pending:
			status = http.StatusAccepted
			w.Header().Set("Location", PathOrders+"/"+strconv.FormatInt(p.Order.ID, 10))
		}
	}
	participant.WriteJSON(w, status, p.Order)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, "order id must be an integer")
		return
	}
	o, err := s.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	participant.WriteJSON(w, http.StatusOK, o)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	status := Status(r.URL.Query().Get("status"))
	if status != "" && !status.Valid() {
		problem.Write(w, http.StatusBadRequest, "status must be PENDING, COMPLETED or CANCELLED")
		return
	}
	orders, err := s.List(r.Context(), status)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	participant.WriteJSON(w, http.StatusOK, orders)
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, detail := s.errorStatus(r, err)
	problem.Write(w, status, detail)
}

// errorStatus maps an error to an HTTP status and detail: 503 with the
// reason when the order database does not answer a ping (instead of 500
// "internal error").
func (s *Service) errorStatus(r *http.Request, err error) (int, string) {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrKeyReused):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ErrLocked):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrPricesUnavailable):
		return http.StatusServiceUnavailable, err.Error()
	}
	s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	if perr := s.db.PingContext(ctx); perr != nil {
		return http.StatusServiceUnavailable, "order database unavailable: " + perr.Error()
	}
	if errors.Is(err, ErrLockUnavailable) {
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}
