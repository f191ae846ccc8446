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

	"github.com/dtxhq/dtx"
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
	Logger                                         *slog.Logger
	// ReadyFile, if set, receives the listen address once serving.
	ReadyFile string
	// Broker and RecordFlows: the comma-separated topics whose events are
	// recorded, from that broker, into the SQLite file FlowsDB.
	Broker, RecordFlows, FlowsDB string
	// AdminToken enables the admin actions for requests carrying it.
	AdminToken string
	// Retention is how long finished transactions are kept after their
	// last update before a background loop purges them (0: forever; else
	// at least MinRetention; the binary's default is DefaultRetention).
	Retention time.Duration
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
	st, err := open.Store(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	mx := metrics.New()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		Owner: cfg.Owner, LeaseTTL: cfg.LeaseTTL, RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax,
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Observer: mx,
	})
	if err != nil {
		return &ConfigError{err.Error()}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
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
	api := server.New(c, server.WithAdminToken(cfg.AdminToken), server.WithMetrics(mx.Handler()))
	srv := &http.Server{Handler: flows.Mount(api), ReadHeaderTimeout: 10 * time.Second}
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
		slog.String("owner", owner), slog.Bool("admin_actions", cfg.AdminToken != ""), slog.Duration("retention", cfg.Retention))
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

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
