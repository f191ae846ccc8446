// Package embed runs a dtx coordinator inside an existing Go service: one
// call opens the store named by a URL, starts the coordinator, and returns
// its HTTP API and dashboard as an http.Handler to mount on the service's
// own server, plus a client bound to it.
//
//	dc, err := embed.Open(ctx, embed.Config{Store: "sqlite://dtx.db"})
//	if err != nil { ... }
//	defer dc.Close(context.Background())
//	mux.Handle("/", dc.Handler()) // /v1/... (the API), /ui/ (the dashboard), /metrics
//	tx, err := dc.Client().StartSaga(ctx, spec)
//
// It is what `dtx server` does, without the listener: the service keeps its
// own (TLS, authentication, timeouts). The handler expects the paths
// /v1/..., /ui/, /metrics and /healthz at its root; mount it on a prefix
// with http.StripPrefix.
package embed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Config configures Open. Only Store is required.
type Config struct {
	// Store is the coordinator's store as a URL: sqlite://path/to/dtx.db
	// (also sqlite:path or a bare file path), postgres://user@host/db, or
	// mysql://user:pass@tcp(host:3306)/db.
	Store string
	// Coordinator tunes the coordinator (zero fields: its defaults). Its
	// Observer, when nil, is the metrics served at /metrics.
	Coordinator coordinator.Config
	// AllowParticipants is the comma-separated list of participant hosts
	// or networks the coordinator may call (see httptransport.ParseAllowlist);
	// empty allows loopback participants only.
	AllowParticipants string
	// AdminToken enables the admin actions (retry, abort) for requests
	// carrying it as a bearer token; empty leaves the API read-only for
	// admin actions.
	AdminToken string
	// CallSigner, if set, signs every branch call (package callsig), so
	// participants that verify run only this coordinator's calls.
	CallSigner *callsig.Signer
	// URL is where the service serves Handler (e.g. "http://10.0.0.5:8080"):
	// Client then calls it over the network. Empty: Client calls Handler in
	// process, with no network in between.
	URL string
	// APIHosts are host names, besides IP addresses and localhost, that
	// requests to Handler may name in their Host header (see
	// server.WithAllowedHosts): the service's own name, say.
	APIHosts []string
}

// Validate reports the first unusable field of c, naming it.
func (c Config) Validate() error {
	if c.Store == "" {
		return errors.New(`embed: Config.Store is empty; want a store URL such as "sqlite://dtx.db" or "postgres://user@host/db"`)
	}
	if c.URL != "" {
		if err := (client.Config{URL: c.URL}).Validate(); err != nil {
			return fmt.Errorf("embed: Config.URL: %w", err)
		}
	}
	if c.AllowParticipants != "" {
		if _, err := httptransport.ParseAllowlist(c.AllowParticipants); err != nil {
			return fmt.Errorf("embed: Config.AllowParticipants: %w", err)
		}
	}
	return nil
}

// Coordinator is a running embedded coordinator.
type Coordinator struct {
	c       *coordinator.Coordinator
	store   dtx.Store
	handler http.Handler
	client  *client.Client
}

// Open opens cfg.Store (creating its tables), starts a coordinator on it
// (resuming the unfinished transactions it finds) and builds its handler
// and client. ctx bounds the opening only; the coordinator runs until
// Close.
func Open(ctx context.Context, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	allow := httptransport.LoopbackOnly()
	if cfg.AllowParticipants != "" {
		allow, _ = httptransport.ParseAllowlist(cfg.AllowParticipants)
	}
	dsn := cfg.Store
	if strings.HasPrefix(dsn, "sqlite:") && !strings.HasPrefix(dsn, "sqlite://") {
		dsn = "sqlite://" + strings.TrimPrefix(dsn, "sqlite:")
	}
	st, err := open.Store(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("embed: Config.Store: %w", err)
	}
	tr := httptransport.New(nil, httptransport.WithAllowlist(allow))
	tr.LimitConns(cfg.Coordinator.MaxCalls)
	tr.WithSigner(cfg.CallSigner)
	mx := metrics.New()
	ccfg := cfg.Coordinator
	if ccfg.Observer == nil {
		ccfg.Observer = mx
	}
	c, err := coordinator.New(st, tr, ccfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("embed: Config.Coordinator: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		c.Close(context.Background())
		st.Close()
		return nil, fmt.Errorf("embed: start: %w", err)
	}
	mx.Watch(c)
	api := server.New(c, server.WithAdminToken(cfg.AdminToken), server.WithMetrics(mx.Handler()),
		server.WithAllowedHosts(cfg.APIHosts...))
	e := &Coordinator{c: c, store: st, handler: api.Guard(api)}
	ccl := client.Config{URL: cfg.URL, Token: cfg.AdminToken}
	if ccl.URL == "" {
		// An IP address passes the API's Host check.
		ccl.URL = "http://127.0.0.1"
		ccl.HTTPClient = &http.Client{Transport: inProcess{e.handler}}
	}
	if e.client, err = client.New(ccl); err != nil {
		e.Close(context.Background())
		return nil, err
	}
	return e, nil
}

// Handler serves the coordinator's HTTP API, the dashboard (/ui/) and its
// metrics (/metrics), with the checks `dtx server` applies to every
// request (Host header, cross-site requests, JSON bodies).
func (e *Coordinator) Handler() http.Handler { return e.handler }

// Client is a client bound to this coordinator: in process, or through
// Config.URL when set. Its Token is Config.AdminToken.
func (e *Coordinator) Client() *client.Client { return e.client }

// Coordinator is the engine itself, for what the API does not cover
// (package coordinator).
func (e *Coordinator) Coordinator() *coordinator.Coordinator { return e.c }

// Close stops the coordinator (in-flight branch calls finish, bounded by
// Config.Coordinator.ShutdownTimeout or ctx; unfinished transactions are
// released for the next start) and closes the store.
func (e *Coordinator) Close(ctx context.Context) error {
	e.c.Close(ctx)
	return e.store.Close()
}

// inProcess is an http.RoundTripper that serves each request with a
// handler in this process and answers with what it wrote.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		// The server reads the body after RoundTrip's caller may reuse it;
		// read it here, as a network transport would have sent it.
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	if req.Host == "" {
		req.Host = req.URL.Host
	}
	req.RequestURI = req.URL.RequestURI()
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	t.h.ServeHTTP(w, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// recorder is the http.ResponseWriter of inProcess.
type recorder struct {
	header      http.Header
	body        bytes.Buffer
	status      int
	wroteHeader bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
