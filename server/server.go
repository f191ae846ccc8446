// Package server is the coordinator's HTTP JSON API:
//
//	POST /v1/sagas                      submit a saga (?wait=true[&timeout=30s] waits for the outcome)
//	POST /v1/tcc                        submit a TCC transaction (same query parameters)
//	GET  /v1/transactions               list (?status=&limit=&before=RFC3339&since=RFC3339&pattern=&q=)
//	GET  /v1/transactions/{gid}         one transaction with branches and history
//	POST /v1/transactions/{gid}/abort   compensate a running saga
//	GET  /v1/events                     live transaction changes (Server-Sent Events)
//	GET  /ui/                           the dashboard (package dashboard); / redirects there
//	GET  /healthz                       liveness
//
// Errors are application/problem+json with a 4xx status for bad input.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/dashboard"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// MaxBody bounds request bodies.
const MaxBody = 4 << 20

// MaxWait bounds ?wait=true.
const MaxWait = 5 * time.Minute

// Server serves the API of one coordinator.
type Server struct {
	c      *coordinator.Coordinator
	mux    *http.ServeMux
	events *hub // GET /v1/events (events.go)
}

// New returns the API handler for c.
func New(c *coordinator.Coordinator) *Server {
	s := &Server{c: c, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/sagas", s.submit)
	s.mux.HandleFunc("POST /v1/tcc", s.submitTCC)
	s.mux.HandleFunc("POST /v1/xa", s.submitXA)
	s.mux.HandleFunc("GET /v1/transactions", s.list)
	s.mux.HandleFunc("GET /v1/transactions/{gid}", s.get)
	s.mux.HandleFunc("POST /v1/transactions/{gid}/abort", s.abort)
	s.events = newHub(c.Store(), EventPollInterval)
	s.mux.Handle("GET /v1/events", s.events)
	s.mux.Handle("GET "+dashboard.Prefix, dashboard.Handler(dashboard.Prefix))
	s.mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Prefix, http.StatusFound))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "owner": c.Owner(), "active": c.Active()})
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError maps errors to statuses; only this layer knows HTTP.
func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, dtx.ErrInvalid):
		problem.Write(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, dtx.ErrNotFound):
		problem.WriteType(w, http.StatusNotFound, problem.TypeTransactionNotFound, err.Error())
	case errors.Is(err, dtx.ErrConflict), errors.Is(err, dtx.ErrFinished),
		errors.Is(err, coordinator.ErrPastPivot), errors.Is(err, coordinator.ErrNotDrivenHere):
		problem.Write(w, http.StatusConflict, err.Error())
	case errors.Is(err, dtx.ErrClosed):
		problem.Write(w, http.StatusServiceUnavailable, err.Error())
	default:
		problem.Write(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	var spec saga.Spec
	if err := decodeStrict(w, r, &spec); err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	s.start(w, r, dtx.PatternSaga, spec)
}

func (s *Server) submitTCC(w http.ResponseWriter, r *http.Request) {
	s.submitTry(w, r, dtx.PatternTCC)
}

// submitXA takes the same body as submitTCC; the tries (prepares) always
// run in participant order.
func (s *Server) submitXA(w http.ResponseWriter, r *http.Request) {
	s.submitTry(w, r, dtx.PatternXA)
}

func (s *Server) submitTry(w http.ResponseWriter, r *http.Request, pattern dtx.Pattern) {
	var spec tcc.Spec
	if err := decodeStrict(w, r, &spec); err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	if pattern == dtx.PatternXA {
		spec.Sequential = true
	}
	sg, err := spec.Saga()
	if err != nil {
		writeError(w, err)
		return
	}
	s.start(w, r, pattern, sg)
}

// start submits spec and answers with its state, waiting for the outcome
// when asked to.
func (s *Server) start(w http.ResponseWriter, r *http.Request, pattern dtx.Pattern, spec saga.Spec) {
	wait, waitFor, err := waitParams(r)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	d, created, err := s.c.SubmitPattern(r.Context(), pattern, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if wait && !d.Status.Terminal() {
		ctx, cancel := context.WithTimeout(r.Context(), waitFor)
		defer cancel()
		final, err := s.c.Wait(ctx, d.GID)
		switch {
		case err == nil:
			d = final
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, dtx.ErrClosed):
			if final != nil {
				d = final
			}
			status = http.StatusAccepted // still running; poll GET /v1/transactions/{gid}
		default:
			writeError(w, err)
			return
		}
	}
	writeJSON(w, status, d)
}

func waitParams(r *http.Request) (bool, time.Duration, error) {
	q := r.URL.Query()
	wait := false
	if v := q.Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, 0, fmt.Errorf("wait=%q: want true or false", v)
		}
		wait = b
	}
	timeout := 60 * time.Second
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxWait {
			return false, 0, fmt.Errorf("timeout=%q: want a duration between 0 and %v", v, MaxWait)
		}
		timeout = d
	}
	return wait, timeout, nil
}

// decodeStrict reads one JSON object, rejecting unknown fields and trailing
// data, with a message that says where the input went wrong.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return fmt.Errorf("request body larger than %d bytes", MaxBody)
		case errors.Is(err, io.EOF):
			return errors.New("request body is empty; want a JSON object")
		}
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	// Anything but whitespace after the object is trailing data (More alone
	// would let a stray '}' or ']' through).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON body: trailing data after the object")
	}
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	tx, br, err := s.c.Store().Get(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	evs, err := s.c.Store().Events(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dtx.TxDetail{Tx: *tx, Branches: br, Events: evs})
}

// ListResponse is the body of GET /v1/transactions.
type ListResponse struct {
	Transactions []dtx.Tx           `json:"transactions"`
	Counts       map[dtx.Status]int `json:"counts"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := dtx.ListFilter{Status: dtx.Status(q.Get("status"))}
	if f.Status != "" && !f.Status.Valid() {
		problem.Write(w, http.StatusBadRequest, fmt.Sprintf("status=%q: want running, compensating, succeeded or failed", f.Status))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			problem.Write(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want 1..1000", v))
			return
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problem.Write(w, http.StatusBadRequest, fmt.Sprintf("before=%q: want an RFC 3339 time", v))
			return
		}
		f.Before = t
	}
	if err := listExtras(q, &f); err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	txs, err := s.c.Store().List(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	counts, err := s.c.Store().Counts(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if txs == nil {
		txs = []dtx.Tx{}
	}
	writeJSON(w, http.StatusOK, ListResponse{Transactions: txs, Counts: counts})
}

// AbortRequest is the optional body of POST /v1/transactions/{gid}/abort.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	var req AbortRequest
	if r.ContentLength != 0 {
		if err := decodeStrict(w, r, &req); err != nil {
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := s.c.Abort(r.Context(), gid, req.Reason); err != nil {
		writeError(w, err)
		return
	}
	tx, br, err := s.c.Store().Get(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, dtx.TxDetail{Tx: *tx, Branches: br})
}
