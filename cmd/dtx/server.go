package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/serve"
	"github.com/dtxhq/dtx/internal/tracing"
	"github.com/dtxhq/dtx/server"
)

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8480", "address of the HTTP API")
	storeDSN := fs.String("store", "sqlite://dtx-data/coordinator.db", "store DSN: sqlite://path, postgres://…, mysql://…, or 'shards: a=DSN b=DSN' (a sharded log, oldest shard first)")
	owner := fs.String("owner", "", "lease owner name (default host-pid-random)")
	leaseTTL := fs.Duration("lease-ttl", coordinator.DefaultLeaseTTL, "lease duration; a crashed coordinator's sagas resume after at most this")
	retryBase := fs.Duration("retry-base", coordinator.DefaultRetryBase, "first retry delay for unknown outcomes")
	retryMax := fs.Duration("retry-max", coordinator.DefaultRetryMax, "maximum retry delay")
	retryMaxAttempts := fs.Int("retry-max-attempts", 0, "default retry.max_attempts of a step without one: an action out of attempts fails, a compensation or confirm waits for an operator (0: unlimited)")
	shutdown := fs.Duration("shutdown-timeout", coordinator.DefaultShutdownTimeout, "how long to wait for in-flight calls on shutdown")
	maxCalls := fs.Int("max-calls", coordinator.DefaultMaxCalls, "most branch calls in flight at once (more wait for a slot); each holds a connection, so keep it well below the open-file limit")
	recoverBatch := fs.Int("recover-batch", coordinator.DefaultRecoverBatch, "most unfinished transactions resumed per recovery pass (one pass a second)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	readyFile := fs.String("ready-file", "", "write the listen address to this file once serving (for scripts)")
	brokerSpec := fs.String("broker", "", "message broker to record choreographed flows from: nats://host:port or kafka://host:port")
	recordFlows := fs.String("record-flows", "", "comma-separated topics whose events are recorded by correlation id and served as GET /v1/flows/{id}")
	flowsDB := fs.String("flows-db", "dtx-data/flows.db", "SQLite file of the recorded flows")
	adminToken := fs.String("admin-token", "", "enable the admin actions (abort, retry) for requests carrying it as 'Authorization: Bearer <token>' (default $"+adminTokenEnv+"; none: the API is read-only)")
	allowParticipants := fs.String("allow-participants", "", "comma-separated hosts the coordinator may call: IPs, CIDR networks, host names (*.domain), host:port, http(s) URL prefixes, or * for any (default: loopback only)")
	maxTimeout := fs.Duration("max-timeout", coordinator.DefaultMaxTimeout, "largest timeout a submitted transaction may ask for (400 above it)")
	maxBranchTimeout := fs.Duration("max-branch-timeout", coordinator.DefaultMaxBranchTimeout, "largest branch_timeout a submitted transaction may ask for (400 above it)")
	callKeyFile := fs.String("call-key-file", "", "file of the key that signs branch calls (callsig format, see dtx keygen; default $"+open.CallKeyEnv+"; none: calls are unsigned)")
	var conns serve.Conns
	fs.DurationVar(&conns.ReadHeaderTimeout, "read-header-timeout", serve.DefaultReadHeaderTimeout, "how long a client may take to send a request's headers (and a new connection may stay silent)")
	fs.DurationVar(&conns.ReadTimeout, "read-timeout", serve.DefaultReadTimeout, "how long a client may take to send a whole request, body included")
	fs.DurationVar(&conns.WriteTimeout, "write-timeout", server.DefaultWriteTimeout, "how long an answer, or one event of GET /v1/events, may take to write (?wait=true gets its wait on top)")
	fs.DurationVar(&conns.IdleTimeout, "idle-timeout", serve.DefaultIdleTimeout, "how long a keep-alive connection may wait for its next request")
	fs.IntVar(&conns.MaxHeaderBytes, "max-header-bytes", serve.DefaultMaxHeaderBytes, "largest request headers accepted")
	fs.IntVar(&conns.MaxEventStreams, "max-event-streams", server.DefaultMaxEventStreams, "most concurrent GET /v1/events streams; past it 503 with Retry-After")
	fs.IntVar(&conns.MaxWaiters, "max-waiters", server.DefaultMaxWaiters, "most concurrent ?wait=true submissions; past it 503 with Retry-After (nothing submitted)")
	apiHosts := fs.String("api-hosts", "", "comma-separated host names clients reach the API by (besides IP addresses, localhost and the --listen host); requests naming another Host are refused with 421 (DNS rebinding)")
	retention := fs.Duration("retention", serve.DefaultRetention, "how long a finished transaction is kept after its last update before it is purged (0: forever; at least 1h: a purged gid can be submitted again)")
	otlpEndpoint := fs.String("otlp-endpoint", "", "export OpenTelemetry spans (each transaction and branch call) over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (default $"+tracing.EnvEndpoint+"; none: tracing is off)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run, until shutdown, to this file (for go tool pprof)")
	gcPercent := fs.Int("gc-percent", defaultGCPercent, "Go garbage collector target (as GOGC; ignored when $GOGC is set): the live heap is small, so collecting less often saves CPU per transaction for a few MB of memory; -1 turns the collector off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *otlpEndpoint != "" {
		if err := tracing.CheckEndpoint(*otlpEndpoint); err != nil {
			return usageError{"--otlp-endpoint: " + err.Error()}
		}
	}
	signer, err := callSigner(*callKeyFile)
	if err != nil {
		return err
	}
	if *recordFlows != "" && (*brokerSpec == "" || *brokerSpec == "embedded") {
		return usagef("--record-flows needs --broker nats://host:port or kafka://host:port (the services' broker)")
	}
	if *maxCalls < 1 || *recoverBatch < 1 {
		return usagef("--max-calls and --recover-batch: want at least 1")
	}
	for _, h := range strings.Split(*apiHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			conns.APIHosts = append(conns.APIHosts, h)
		}
	}
	if conns.ReadHeaderTimeout <= 0 || conns.ReadTimeout <= 0 || conns.WriteTimeout <= 0 || conns.IdleTimeout <= 0 {
		return usagef("--read-header-timeout, --read-timeout, --write-timeout and --idle-timeout must be positive")
	}
	if conns.MaxHeaderBytes < 1024 || conns.MaxEventStreams < 1 || conns.MaxWaiters < 1 {
		return usagef("--max-header-bytes must be at least 1024, --max-event-streams and --max-waiters at least 1")
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
	setGCPercent(*gcPercent, os.Getenv("GOGC"))
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	tr, err := startTracing(ctx, *otlpEndpoint, "dtx-coordinator", log)
	if err != nil {
		return err
	}
	defer tr.Shutdown(context.WithoutCancel(ctx))
	err = serve.Run(ctx, serve.Config{
		Listen: *listen, Store: *storeDSN, Owner: *owner, LeaseTTL: *leaseTTL, RetryBase: *retryBase, RetryMax: *retryMax,
		RetryMaxAttempts: *retryMaxAttempts,
		ShutdownTimeout:  *shutdown, Logger: log, ReadyFile: *readyFile,
		Broker: *brokerSpec, RecordFlows: *recordFlows, FlowsDB: *flowsDB, AdminToken: *adminToken,
		AllowParticipants: *allowParticipants,
		MaxTimeout:        *maxTimeout, MaxBranchTimeout: *maxBranchTimeout,
		MaxCalls: *maxCalls, RecoverBatch: *recoverBatch,
		CallSigner:     signer,
		Conns:          conns,
		Retention:      *retention,
		TracerProvider: tr.Provider,
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

// startCPUProfile writes a CPU profile to path until the returned function
// is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// defaultGCPercent is dtx server's --gc-percent. Measured with dtx bench
// --compare (SQLite, 8 clients): 400 uses 7-10% less CPU per saga than
// Go's default 100; the coordinator's live heap is a few MB.
const defaultGCPercent = 400

// setGCPercent sets the collector's target to percent unless the GOGC
// environment variable (gogc) already chose one; it reports whether it did.
func setGCPercent(percent int, gogc string) bool {
	if gogc != "" {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}
