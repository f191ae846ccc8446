package main

import (
	"context"
	"errors"
	"flag"
	"os"

	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/serve"
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
	retention := fs.Duration("retention", serve.DefaultRetention, "how long a finished transaction is kept after its last update before it is purged (0: forever; at least 1h: a purged gid can be submitted again)")
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
	err = serve.Run(ctx, serve.Config{
		Listen: *listen, Store: *storeDSN, Owner: *owner, LeaseTTL: *leaseTTL, RetryBase: *retryBase, RetryMax: *retryMax,
		ShutdownTimeout: *shutdown, Logger: log, ReadyFile: *readyFile,
		Broker: *brokerSpec, RecordFlows: *recordFlows, FlowsDB: *flowsDB, AdminToken: *adminToken,
		Retention: *retention,
	})
	var ce *serve.ConfigError
	if errors.As(err, &ce) {
		return usageError{ce.Msg}
	}
	return err
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
