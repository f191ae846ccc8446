// Package serve is `dtx server`: a coordinator on a store, its HTTP API
// (with the dashboard and /metrics), optionally the choreographed flows
// recorded from a broker, served until the context is done, then shut
// down gracefully.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/atomicfile"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Config configures Run.
type Config struct {
	// Listen is the API's address.
	Listen string
	// Store is the store's DSN (see open.Store).
	Store string
	// Owner, LeaseTTL, RetryBase, RetryMax and ShutdownTimeout are the
	// coordinator's (see coordinator.Config).
	Owner                                          string
	LeaseTTL, RetryBase, RetryMax, ShutdownTimeout time.Duration
	// RetryMaxAttempts is coordinator.Config.RetryMaxAttempts: the
	// retry.max_attempts of a step without one (0: unlimited).
	RetryMaxAttempts int
	Logger           *slog.Logger
	// ReadyFile, if set, receives the listen address once serving.
	ReadyFile string
	// Broker and RecordFlows: the comma-separated topics whose events are
	// recorded, from that broker, into the SQLite file FlowsDB.
	Broker, RecordFlows, FlowsDB string
	// AdminToken enables the admin actions for requests carrying it; with
	// it set, participants' error details are shown only to its holders.
	AdminToken string
	// AllowParticipants is the comma-separated participant allowlist (see
	// httptransport.Allowlist); empty allows loopback participants only.
	// Step URLs pointing at the coordinator's own listen address are
	// refused whatever it says.
	AllowParticipants string
	// MaxTimeout and MaxBranchTimeout bound the timeouts a submission may
	// ask for (see coordinator.Config; zero: the defaults).
	MaxTimeout, MaxBranchTimeout time.Duration
	// MaxCalls bounds concurrent branch calls, and the HTTP transport's
	// connections with them; RecoverBatch bounds the transactions resumed
	// per recovery pass (see coordinator.Config; 0: the defaults).
	MaxCalls, RecoverBatch int
	// CallSigner, if set, signs every branch call (package callsig), so
	// participants that verify run only this coordinator's calls. Nil
	// sends them unsigned (logged as a warning).
	CallSigner *callsig.Signer
	// Conns bounds the API's connections (zero fields: the defaults).
	Conns Conns
	// Retention is how long finished transactions are kept after their
	// last update before a background loop purges them (0: forever; else
	// at least MinRetention; the binary's default is DefaultRetention).
	Retention time.Duration
	// TracerProvider receives the coordinator's spans (see
	// coordinator.Config.TracerProvider; package internal/tracing builds
	// the binary's). Nil: OpenTelemetry's global provider.
	TracerProvider trace.TracerProvider
}

// Conns bounds the API's connections; a zero field takes its default.
type Conns struct {
	// ReadHeaderTimeout bounds reading a request's headers, and how long a
	// new connection may stay silent (DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included
	// (DefaultReadTimeout). The long-lived answers lift it once the
	// request is read.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer, or one event of a stream
	// (server.DefaultWriteTimeout); ?wait=true gets its wait on top.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// MaxEventStreams and MaxWaiters bound the concurrent event streams
	// and ?wait=true submissions (server.DefaultMaxEventStreams,
	// server.DefaultMaxWaiters).
	MaxEventStreams, MaxWaiters int
	// APIHosts are host names, besides IP addresses, localhost and the
	// listen address's host, that requests may name in their Host header.
	APIHosts []string
}

// Defaults of Conns.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// httpServer returns the API's http.Server for h with the bounds of c.
// There is no global WriteTimeout: the server package sets a write
// deadline per request, which the event stream and ?wait=true move on.
func (c Conns) httpServer(h http.Handler) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	maxHeader := c.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(c.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:       or(c.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    maxHeader,
	}
}

// ConfigError is a configuration the coordinator refuses.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkRetention(cfg.Retention); err != nil {
		return err
	}
	allow, err := participantAllowlist(cfg.AllowParticipants)
	if err != nil {
		return err
	}
	st, err := open.Store(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	// Listen first: the transport refuses calls to this very address.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mx := metrics.New()
	tr := httptransport.New(nil, httptransport.WithAllowlist(allow), httptransport.WithSelf(ln.Addr().String()))
	tr.LimitConns(cfg.MaxCalls)
	tr.WithSigner(cfg.CallSigner)
	c, err := coordinator.New(st, tr, coordinator.Config{
		Owner: cfg.Owner, LeaseTTL: cfg.LeaseTTL, RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax,
		RetryMaxAttempts: cfg.RetryMaxAttempts,
		ShutdownTimeout:  cfg.ShutdownTimeout, Logger: log, Observer: mx,
		MaxTimeout: cfg.MaxTimeout, MaxBranchTimeout: cfg.MaxBranchTimeout,
		MaxCalls: cfg.MaxCalls, RecoverBatch: cfg.RecoverBatch,
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		ln.Close()
		return &ConfigError{err.Error()}
	}
	if err := c.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	flows, err := startFlowRecorder(ctx, cfg.Broker, cfg.RecordFlows, cfg.FlowsDB)
	if err != nil {
		ln.Close()
		c.Close(context.Background())
		return err
	}
	defer flows.Close()
	mx.Watch(c)
	if cfg.Retention > 0 {
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if p, ok := st.(dtx.Purger); ok {
			wg.Go(func() { runRetention(rctx, log, p, cfg.Retention) })
		}
		if flows != nil {
			wg.Go(func() { flows.purge(rctx, log, cfg.Retention) })
		}
		defer func() { stop(); wg.Wait() }()
	}
	hosts := cfg.Conns.APIHosts
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil && h != "" {
		hosts = append(hosts[:len(hosts):len(hosts)], h)
	}
	api := server.New(c, server.WithAdminToken(cfg.AdminToken), server.WithMetrics(mx.Handler()),
		server.WithWriteTimeout(cfg.Conns.WriteTimeout), server.WithMaxEventStreams(cfg.Conns.MaxEventStreams),
		server.WithMaxWaiters(cfg.Conns.MaxWaiters), server.WithAllowedHosts(hosts...))
	srv := cfg.Conns.httpServer(api.Guard(flows.Mount(api)))
	srv.RegisterOnShutdown(api.CloseStreams) // live event streams never go idle by themselves
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if err := announce(log, cfg, ln.Addr(), c.Owner()); err != nil {
		return err
	}
	select {
	case err := <-errc:
		c.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown(log, srv, c, cfg.ShutdownTimeout)
	return nil
}

// announce logs what is served and writes the ready file.
func announce(log *slog.Logger, cfg Config, addr net.Addr, owner string) error {
	log.Info("coordinator serving", slog.String("addr", addr.String()), slog.String("store", open.DescribeStore(cfg.Store)),
		slog.String("owner", owner), slog.Bool("admin_actions", cfg.AdminToken != ""),
		slog.String("allow_participants", cfg.AllowParticipants), slog.Duration("retention", cfg.Retention))
	if cfg.CallSigner != nil {
		log.Info("branch calls are signed", slog.String("key_id", cfg.CallSigner.KeyID()))
	} else {
		log.Warn("branch calls are not signed: participants cannot tell this coordinator's calls from anyone else's; give the key with --call-key-file or $DTX_CALL_KEY")
	}
	if !isLoopback(addr) {
		log.Warn("the API listens beyond loopback: reads, submissions and /metrics are open to the network; put it behind a proxy with TLS and authentication", slog.String("addr", addr.String()))
	}
	if cfg.ReadyFile != "" {
		return atomicfile.Write(cfg.ReadyFile, addr.String())
	}
	return nil
}

// shutdown stops accepting requests and drains the drivers together;
// callers waiting on a transaction get its latest state (202) when the
// drivers stop.
func shutdown(log *slog.Logger, srv *http.Server, c *coordinator.Coordinator, timeout time.Duration) {
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	c.Close(sctx)
	if err := <-shut; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", slog.Any("err", err))
	}
	log.Info("stopped")
}

// participantAllowlist parses --allow-participants; empty is loopback only.
func participantAllowlist(list string) (*httptransport.Allowlist, error) {
	if list == "" {
		return httptransport.LoopbackOnly(), nil
	}
	a, err := httptransport.ParseAllowlist(list)
	if err != nil {
		return nil, &ConfigError{err.Error()}
	}
	return a, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
