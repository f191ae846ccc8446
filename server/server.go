// Package server is the coordinator's HTTP JSON API (the bodies are
// declared in package api):
//
//	POST /v1/sagas                      submit a saga (?wait=true[&timeout=30s] waits for the outcome)
//	POST /v1/tcc                        submit a TCC transaction (same query parameters)
//	GET  /v1/transactions               list (?status=&limit=&before=RFC3339&since=RFC3339&pattern=&q=)
//	GET  /v1/transactions/{gid}         one transaction with branches and history (?wait=true[&timeout=30s]: once finished; 202 if the wait ends first)
//	POST /v1/transactions/{gid}/abort   compensate a running saga; {"force":true,"operator":…} stops any unfinished one (admin)
//	POST /v1/transactions/{gid}/retry   call operations waiting on backoff now (admin)
//	GET  /v1/attention                  unfinished transactions that need a look (?min_attempts=&older_than=&limit=)
//	GET  /metrics                       Prometheus metrics (WithMetrics)
//	GET  /v1/events                     live transaction changes (Server-Sent Events)
//	GET  /ui/                           the dashboard (package dashboard); / redirects there
//	GET  /healthz                       liveness
//
// Errors are application/problem+json with a 4xx status for bad input.
//
// Admin actions (abort, retry) need the admin token (WithAdminToken) as
// "Authorization: Bearer <token>": 401 without it or with another one. A
// server with no admin token is read-only: admin actions answer 403.
// Submissions and reads need no token; but with an admin token set,
// participants' error details are shown only to requests carrying it
// (redact.go).
//
// State-changing requests (every method but GET, HEAD and OPTIONS) are
// guarded against cross-site requests from browsers (CSRF, which would
// otherwise let any web page make the coordinator call URLs of its
// choosing):
//
//   - a request with a body must say "Content-Type: application/json"
//     (parameters such as "; charset=utf-8" are allowed), or it is refused
//     with 415: an HTML form or a no-cors fetch cannot send that type. A
//     body-less action (retry, abort without a reason) needs no type; it
//     relies on the admin token and the check below.
//   - a request is refused with 403 (problem type urn:dtx:problem:cross-site)
//     when its Sec-Fetch-Site header is present and neither "same-origin"
//     nor "none", or when its Origin header is present and names another
//     host than the request's Host. Requests with neither header (the SDK,
//     the CLI, curl, services) pass; so does the dashboard, served from the
//     same origin.
//
// Every request's Host header must name an IP address, localhost, or a
// name given with WithAllowedHosts, or it is refused with 421 (problem type
// urn:dtx:problem:host-not-allowed): this stops DNS rebinding, where a web
// page on an attacker's name re-points that name at the coordinator.
//
// Connections are bounded (conns.go): each answer must be written within
// the write timeout (WithWriteTimeout; an event stream per event, a
// ?wait=true submission after its wait), and at most WithMaxEventStreams
// event streams and WithMaxWaiters waiting submissions run at once; past
// these 503 with Retry-After (problem type urn:dtx:problem:too-busy).
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
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
	c   *coordinator.Coordinator
	mux *http.ServeMux
	// adminHash is the SHA-256 of the admin token (nil: admin actions
	// are disabled).
	adminHash []byte
	metrics   http.Handler
	events    *hub // GET /v1/events (events.go)

	// Connection limits (conns.go).
	writeTimeout time.Duration
	streams      chan struct{} // a slot per open event stream
	waiters      chan struct{} // a slot per ?wait=true submission
	hosts        map[string]bool
}

// Option configures a Server.
type Option func(*Server)

// WithAdminToken enables the admin actions for requests that carry token
// as a bearer token. An empty token leaves them disabled.
func WithAdminToken(token string) Option {
	return func(s *Server) {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			s.adminHash = h[:]
		}
	}
}

// WithMetrics serves h (e.g. metrics.Metrics.Handler) on GET /metrics.
func WithMetrics(h http.Handler) Option { return func(s *Server) { s.metrics = h } }

// New returns the API handler for c.
func New(c *coordinator.Coordinator, opts ...Option) *Server {
	s := &Server{c: c, mux: http.NewServeMux(), writeTimeout: DefaultWriteTimeout,
		streams: make(chan struct{}, DefaultMaxEventStreams), waiters: make(chan struct{}, DefaultMaxWaiters),
		hosts: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	s.mux.HandleFunc("POST /v1/sagas", s.submit)
	s.mux.HandleFunc("POST /v1/tcc", s.submitTCC)
	s.mux.HandleFunc("POST /v1/xa", s.submitXA)
	s.mux.HandleFunc("GET /v1/transactions", s.list)
	s.mux.HandleFunc("GET /v1/transactions/{gid}", s.get)
	s.mux.HandleFunc("POST /v1/transactions/{gid}/abort", s.RequireAdmin(s.abort))
	s.mux.HandleFunc("POST /v1/transactions/{gid}/retry", s.RequireAdmin(s.retry))
	s.mux.HandleFunc("GET /v1/attention", s.attention)
	if s.metrics != nil {
		s.mux.Handle("GET /metrics", s.metrics)
	}
	s.events = newHub(c.Store(), EventPollInterval)
	s.events.writeTimeout = s.writeTimeout
	s.mux.Handle("GET /v1/events", s.limitStreams(http.HandlerFunc(s.serveEvents)))
	s.mux.Handle("GET "+dashboard.Prefix, dashboard.Handler(dashboard.Prefix))
	s.mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Prefix, http.StatusFound))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		problem.WriteJSON(w, http.StatusOK, api.Health{Status: "ok", Owner: c.Owner(), Active: c.Active()})
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

// RequireAdmin wraps an admin action: it runs h only for a request that
// carries the admin token ("Authorization: Bearer <token>"), answers 401
// (problem type urn:dtx:problem:unauthorized) otherwise, and 403 (type
// urn:dtx:problem:admin-disabled) when the server has no admin token.
func (s *Server) RequireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.adminHash == nil {
			problem.WriteType(w, http.StatusForbidden, problem.TypeAdminDisabled,
				"admin actions are disabled: start the coordinator with --admin-token (or DTX_ADMIN_TOKEN) and send the token as Authorization: Bearer <token>")
			return
		}
		auth := r.Header.Get("Authorization")
		const prefix = "Bearer "
		if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dtx"`)
			problem.WriteType(w, http.StatusUnauthorized, problem.TypeUnauthorized, "admin action needs the admin token as Authorization: Bearer <token>")
			return
		}
		// Comparing digests keeps the comparison constant-time whatever
		// the length of the presented token.
		got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
		if subtle.ConstantTimeCompare(got[:], s.adminHash) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dtx", error="invalid_token"`)
			problem.WriteType(w, http.StatusUnauthorized, problem.TypeUnauthorized, "wrong admin token")
			return
		}
		h(w, r)
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Guard(s.mux).ServeHTTP(w, r)
}

// Guard wraps h (this Server, or a handler that serves more routes next to
// it) with the checks every request passes: the Host header (421, problem
// type urn:dtx:problem:host-not-allowed), the write deadline, and for
// state-changing requests the cross-site and content-type checks.
func (s *Server) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.guard(h, w, r) })
}

func (s *Server) guard(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if why := s.hostRefused(r); why != "" {
		problem.WriteType(w, http.StatusMisdirectedRequest, problem.TypeHostNotAllowed, why)
		return
	}
	// Long-lived answers (events, ?wait=true) move this deadline on.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.writeTimeout))
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if why := crossSite(r); why != "" {
			problem.WriteType(w, http.StatusForbidden, problem.TypeCrossSite, why)
			return
		}
		if why := notJSON(r); why != "" {
			problem.Write(w, http.StatusUnsupportedMediaType, why)
			return
		}
	}
	h.ServeHTTP(w, r)
}

// crossSite says why a state-changing request comes from another site, or
// "" if it does not (or does not say: a request without Sec-Fetch-Site and
// Origin is not from a browser page).
func crossSite(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Sprintf("cross-site request refused (Sec-Fetch-Site: %s): state-changing requests must come from the same origin or from a non-browser client", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		!strings.EqualFold(hostPort(u.Scheme, u.Host), hostPort(u.Scheme, r.Host)) {
		return fmt.Sprintf("cross-origin request refused: Origin %q is not this server (%s)", origin, r.Host)
	}
	return ""
}

// hostPort drops the scheme's default port from host.
func hostPort(scheme, host string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

// notJSON says why a request with a body is refused for its content type,
// or "" if it has no body or a JSON one.
func notJSON(r *http.Request) string {
	if r.ContentLength == 0 {
		return ""
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "a request body needs Content-Type: application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Sprintf("unsupported Content-Type %q: the body must be application/json", ct)
	}
	return ""
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
	if err := DecodeStrict(w, r, &spec); err != nil {
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
	if err := DecodeStrict(w, r, &spec); err != nil {
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
	if wait {
		// Refused before submitting: a 503 means nothing was started.
		if !acquire(s.waiters) {
			tooBusy(w, fmt.Sprintf("too many submissions (%d) are waiting for their outcome; retry later, or submit without wait=true and poll GET /v1/transactions/{gid}", cap(s.waiters)))
			return
		}
		defer release(s.waiters)
	}
	// W3C Trace Context, read by OpenTelemetry's propagator: a malformed
	// header is ignored, not an error. The coordinator keeps the trace
	// context with the transaction (unless the body names one).
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	d, created, err := s.c.SubmitPattern(ctx, pattern, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if wait && !d.Status.Terminal() {
		extendDeadlines(w, time.Now().Add(waitFor+s.writeTimeout))
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
	problem.WriteJSON(w, status, s.detailFor(r, d))
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

// DecodeStrict reads one JSON object of at most MaxBody bytes, rejecting
// unknown fields and trailing data, with a message that says where the
// input went wrong. The bench's floor server parses submissions with it, as
// the API does.
func DecodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
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
	wait, waitFor, err := waitParams(r)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	tx, br, err := s.c.Store().Get(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	if wait && !tx.Status.Terminal() {
		// ?wait=true: answer once the transaction has finished (200), or
		// with its latest state when the wait ends first (202).
		if !acquire(s.waiters) {
			tooBusy(w, fmt.Sprintf("too many requests (%d) are waiting for an outcome; retry later, or poll without wait=true", cap(s.waiters)))
			return
		}
		defer release(s.waiters)
		extendDeadlines(w, time.Now().Add(waitFor+s.writeTimeout))
		ctx, cancel := context.WithTimeout(r.Context(), waitFor)
		defer cancel()
		final, err := s.c.Wait(ctx, gid)
		switch {
		case err == nil:
			problem.WriteJSON(w, http.StatusOK, s.detailFor(r, final))
			return
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, dtx.ErrClosed):
			if final != nil {
				problem.WriteJSON(w, http.StatusAccepted, s.detailFor(r, final))
				return
			}
			if tx, br, err = s.c.Store().Get(r.Context(), gid); err != nil {
				writeError(w, err)
				return
			}
			evs, err := s.c.Store().Events(r.Context(), gid)
			if err != nil {
				writeError(w, err)
				return
			}
			problem.WriteJSON(w, http.StatusAccepted, s.detailFor(r, &dtx.TxDetail{Tx: *tx, Branches: br, Events: evs}))
			return
		default:
			writeError(w, err)
			return
		}
	}
	evs, err := s.c.Store().Events(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, s.detailFor(r, &dtx.TxDetail{Tx: *tx, Branches: br, Events: evs}))
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
	problem.WriteJSON(w, http.StatusOK, api.ListResponse{Transactions: api.Summaries(s.txsFor(r, txs)), Counts: counts})
}

// Bounds of the abort body's fields.
const (
	MaxAbortReason  = 1024
	MaxOperatorName = 64
)

// abort compensates a running saga, or with {"force": true} stops any
// unfinished transaction (see api.AbortRequest and
// coordinator.AbortWith), recording the operator named in the body and the
// request's remote address.
func (s *Server) abort(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	var req api.AbortRequest
	if r.ContentLength != 0 {
		if err := DecodeStrict(w, r, &req); err != nil {
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := checkAbort(&req); err != nil {
		problem.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	unresolved, err := s.c.AbortWith(r.Context(), gid, coordinator.AbortOptions{
		Reason: req.Reason, Force: req.Force, Operator: req.Operator, From: r.RemoteAddr,
	})
	if err != nil {
		if req.Force && errors.Is(err, dtx.ErrFinished) {
			problem.Write(w, http.StatusConflict, fmt.Sprintf("transaction %s is already finished: there is nothing to abort", gid))
			return
		}
		writeError(w, err)
		return
	}
	tx, br, err := s.c.Store().Get(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	d := dtx.TxDetail{Tx: *tx, Branches: br}
	if req.Force {
		if d.Events, err = s.c.Store().Events(r.Context(), gid); err != nil {
			writeError(w, err)
			return
		}
	}
	problem.WriteJSON(w, http.StatusAccepted, api.AbortResponse{TxDetail: d, Unresolved: unresolved})
}

// checkAbort refuses an abort body the history should not record.
func checkAbort(req *api.AbortRequest) error {
	if req.Force && strings.TrimSpace(req.Operator) == "" {
		return errors.New(`a forced abort needs "operator": who stops the transaction (recorded in its history)`)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"reason", req.Reason, MaxAbortReason}, {"operator", req.Operator, MaxOperatorName}} {
		if len(f.v) > f.max {
			return fmt.Errorf("%s: %d bytes, want at most %d", f.name, len(f.v), f.max)
		}
		if !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unicode.IsControl) {
			return fmt.Errorf("%s: want text without control characters", f.name)
		}
	}
	return nil
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	gid := r.PathValue("gid")
	n, err := s.c.RetryNow(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	tx, br, err := s.c.Store().Get(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusAccepted, api.RetryResponse{TxDetail: dtx.TxDetail{Tx: *tx, Branches: br}, Retried: n})
}

// Defaults of GET /v1/attention.
const (
	DefaultAttentionAttempts = coordinator.DefaultAlertAfter
	DefaultAttentionAge      = 5 * time.Minute
)

// attention lists unfinished transactions with an operation still pending
// after min_attempts calls, or older than older_than (see
// coordinator.Attention).
func (s *Server) attention(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	minAttempts, olderThan, limit := DefaultAttentionAttempts, DefaultAttentionAge, 100
	if v := q.Get("min_attempts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			problem.Write(w, http.StatusBadRequest, fmt.Sprintf("min_attempts=%q: want a number of calls (0: off)", v))
			return
		}
		minAttempts = n
	}
	if v := q.Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			problem.Write(w, http.StatusBadRequest, fmt.Sprintf("older_than=%q: want a duration such as 10m (0: off)", v))
			return
		}
		olderThan = d
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			problem.Write(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want 1..1000", v))
			return
		}
		limit = n
	}
	if minAttempts == 0 && olderThan == 0 {
		problem.Write(w, http.StatusBadRequest, "min_attempts=0 and older_than=0 turn off both criteria; set at least one")
		return
	}
	items, err := s.c.Attention(r.Context(), coordinator.AttentionQuery{MinAttempts: minAttempts, OlderThan: olderThan, Limit: limit})
	if err != nil {
		writeError(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, api.AttentionResponse{Transactions: s.attentionFor(r, items), MinAttempts: minAttempts, OlderThan: dtx.Duration(olderThan)})
}
