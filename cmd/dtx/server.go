package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/atomicfile"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8480", "address of the HTTP API")
	storeDSN := fs.String("store", "sqlite://dtx-data/coordinator.db", "store DSN: sqlite://path or postgres://…")
	owner := fs.String("owner", "", "lease owner name (default host-pid-random)")
	leaseTTL := fs.Duration("lease-ttl", coordinator.DefaultLeaseTTL, "lease duration; a crashed coordinator's sagas resume after at most this")
	retryBase := fs.Duration("retry-base", coordinator.DefaultRetryBase, "first retry delay for unknown outcomes")
	retryMax := fs.Duration("retry-max", coordinator.DefaultRetryMax, "maximum retry delay")
	shutdown := fs.Duration("shutdown-timeout", coordinator.DefaultShutdownTimeout, "how long to wait for in-flight calls on shutdown")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	readyFile := fs.String("ready-file", "", "write the listen address to this file once serving (for scripts)")
	brokerSpec := fs.String("broker", "", "message broker to record choreographed flows from: nats://host:port or kafka://host:port")
	recordFlows := fs.String("record-flows", "", "comma-separated topics whose events are recorded by correlation id and served as GET /v1/flows/{id}")
	flowsDB := fs.String("flows-db", "dtx-data/flows.db", "SQLite file of the recorded flows")
	adminToken := fs.String("admin-token", "", "enable the admin actions (abort, retry) for requests carrying it as 'Authorization: Bearer <token>' (default $"+adminTokenEnv+"; none: the API is read-only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *recordFlows != "" && (*brokerSpec == "" || *brokerSpec == "embedded") {
		return usagef("--record-flows needs --broker nats://host:port or kafka://host:port (the services' broker)")
	}
	if *adminToken == "" {
		*adminToken = os.Getenv(adminTokenEnv)
	}
	if err := checkAdminToken(*adminToken); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, *logJSON)
	if err != nil {
		return err
	}
	st, err := open.Store(ctx, *storeDSN)
	if err != nil {
		return err
	}
	defer st.Close()
	mx := metrics.New()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		Owner: *owner, LeaseTTL: *leaseTTL, RetryBase: *retryBase, RetryMax: *retryMax,
		ShutdownTimeout: *shutdown, Logger: log, Observer: mx,
	})
	if err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	flows, err := startFlowRecorder(ctx, *brokerSpec, *recordFlows, *flowsDB)
	if err != nil {
		ln.Close()
		c.Close(context.Background())
		return err
	}
	defer flows.Close()
	mx.Watch(c)
	api := server.New(c, server.WithAdminToken(*adminToken), server.WithMetrics(mx.Handler()))
	srv := &http.Server{Handler: flows.Mount(api), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(api.CloseStreams) // live event streams never go idle by themselves
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("coordinator serving", slog.String("addr", ln.Addr().String()), slog.String("store", open.DescribeStore(*storeDSN)),
		slog.String("owner", c.Owner()), slog.Bool("admin_actions", *adminToken != ""))
	if !isLoopback(ln.Addr()) {
		log.Warn("the API listens beyond loopback: reads, submissions and /metrics are open to the network; put it behind a proxy with TLS and authentication", slog.String("addr", ln.Addr().String()))
	}
	if *readyFile != "" {
		if err := atomicfile.Write(*readyFile, ln.Addr().String()); err != nil {
			return err
		}
	}
	select {
	case err := <-errc:
		c.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown+5*time.Second)
	defer cancel()
	// Stop accepting requests and drain the drivers together; callers
	// waiting on a saga get its latest state (202) when the drivers stop.
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	c.Close(sctx)
	if err := <-shut; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", slog.Any("err", err))
	}
	log.Info("stopped")
	return nil
}

// adminTokenEnv names the environment variable that holds the admin token
// for dtx server and dtx tx when --admin-token / --token is not given.
const adminTokenEnv = "DTX_ADMIN_TOKEN"

// minAdminToken is the shortest admin token accepted.
const minAdminToken = 16

// checkAdminToken refuses tokens too short to resist guessing and tokens
// that cannot travel in an HTTP header.
func checkAdminToken(tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) < minAdminToken {
		return usagef("admin token: want at least %d characters (e.g. openssl rand -hex 16)", minAdminToken)
	}
	for _, r := range tok {
		if r <= ' ' || r > '~' {
			return usagef("admin token: want printable ASCII without spaces")
		}
	}
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
