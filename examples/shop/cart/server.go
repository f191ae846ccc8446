package cart

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop/internal/shopdb"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// ServerConfig configures a cart service Start runs.
type ServerConfig struct {
	// Dir holds the SQLite files: cart-events.db (the event store, unless
	// EventsDSN) and cart-queries.db (the read model). Required.
	Dir string
	// EventsDSN, a postgres:// URL, puts the event store on PostgreSQL;
	// the read model stays on SQLite in Dir.
	EventsDSN string
	// OrderURL is the order service's base URL. Required.
	OrderURL string
	// Addr is the listen address (default 127.0.0.1:0, a port the kernel
	// picks).
	Addr string
	// ProjectionPoll: see Config.ProjectionPoll.
	ProjectionPoll time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is a running cart service: its databases, its read model's
// projection and its HTTP API.
type Server struct {
	*Service
	url     string
	closers []func() error
	wg      sync.WaitGroup
	once    sync.Once
}

// Start opens the databases, migrates them, starts the projection and
// serves the HTTP API until Close.
func Start(ctx context.Context, cfg ServerConfig) (_ *Server, err error) {
	if cfg.Dir == "" || cfg.OrderURL == "" {
		return nil, errors.New("cart: ServerConfig.Dir and OrderURL are required")
	}
	if cfg.EventsDSN != "" && !shopdb.IsPostgres(cfg.EventsDSN) {
		return nil, fmt.Errorf("cart: events DSN must be a postgres:// URL (empty: SQLite in %s)", cfg.Dir)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	events, d, err := shopdb.Open(ctx, cfg.EventsDSN, filepath.Join(cfg.Dir, "cart-events.db"))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, events.Close)
	queries, err := sqlitedb.Open(ctx, filepath.Join(cfg.Dir, "cart-queries.db"), 0)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, queries.Close)
	if s.Service, err = newService(events, d, queries, cfg); err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cart: listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Go(func() { _ = srv.Serve(ln) })
	s.wg.Go(func() { _ = s.Run(runCtx) })
	s.closers = append(s.closers, func() error {
		stop()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		s.wg.Wait()
		return err
	})
	s.url = "http://" + ln.Addr().String()
	return s, nil
}

func newService(events *sql.DB, d appdb.Dialect, queries *sql.DB, cfg ServerConfig) (*Service, error) {
	store, err := eventstore.New(events, eventstore.Config{Dialect: d})
	if err != nil {
		return nil, err
	}
	return New(Config{Store: store, QueryDB: queries, QueryDialect: appdb.SQLite,
		Orders: &order.Client{URL: cfg.OrderURL, HTTP: &http.Client{}}, ProjectionPoll: cfg.ProjectionPoll, Logger: cfg.Logger})
}

// URL is the base URL of the HTTP API.
func (s *Server) URL() string { return s.url }

// Close stops serving and the projection, and closes the databases.
func (s *Server) Close() error {
	var errs []error
	s.once.Do(func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			errs = append(errs, s.closers[i]())
		}
	})
	return errors.Join(errs...)
}
