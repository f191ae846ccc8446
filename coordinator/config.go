package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/saga"
)

// Defaults for Config.
const (
	DefaultLeaseTTL        = 10 * time.Second
	DefaultRecoverInterval = time.Second
	DefaultRetryBase       = 100 * time.Millisecond
	DefaultRetryMax        = 10 * time.Second
	DefaultAlertAfter      = 5
	DefaultMaxActive       = 20000
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxTimeout and DefaultMaxBranchTimeout are the largest
	// timeout and branch_timeout a submission may ask for.
	DefaultMaxTimeout       = 24 * time.Hour
	DefaultMaxBranchTimeout = 5 * time.Minute
	// DefaultMaxCalls bounds concurrent branch calls: each holds a
	// connection (a file descriptor) while it waits for its answer.
	DefaultMaxCalls = 256
	// DefaultRecoverBatch bounds the transactions one recovery pass
	// resumes (so at most this many per RecoverInterval).
	DefaultRecoverBatch = 500
)

// Alert reports an operation that keeps failing: a compensation, or a step
// past the pivot, that must eventually succeed; or, at once, any call that
// was misrouted (see dtx.ErrMisrouted).
type Alert struct {
	GID      string
	Branch   int
	Name     string
	Op       string
	Attempts int
	LastErr  string
	// NeedsOperator: the operation exhausted its retry policy (or got one
	// of its non-retryable statuses) and is no longer retried: it waits
	// for an operator's RetryNow or a forced abort.
	NeedsOperator bool
	// Misrouted: the call was answered by something that is not a dtx
	// participant (a 404/405 without a problem body): a wrong URL.
	Misrouted bool
}

// Config configures a Coordinator. Zero values take the defaults.
type Config struct {
	// Owner identifies this coordinator in leases (default: host-pid-random).
	Owner string
	// LeaseTTL is how long a lease lasts without renewal (default 10s). A
	// crashed coordinator's transactions are resumed after at most this.
	LeaseTTL time.Duration
	// RecoverInterval is how often expired leases are claimed (default 1s).
	RecoverInterval time.Duration
	// RetryBase and RetryMax bound the backoff between retries of an unknown
	// outcome (defaults 100ms, 10s); the delay doubles per attempt and is
	// jittered.
	RetryBase, RetryMax time.Duration
	// RetryMaxAttempts is the default retry.max_attempts of a step without
	// one (0: unlimited, retry until the deadline or forever for
	// compensations). See saga.RetryPolicy for what exhausting it means.
	RetryMaxAttempts int
	// AlertAfter raises an alert every AlertAfter failed attempts of an
	// operation that cannot be given up (default 5).
	AlertAfter int
	// OnAlert, if set, is called (from the driver goroutine; keep it quick)
	// for each alert, in addition to a warning log line.
	OnAlert func(Alert)
	// Observer, if set, receives events for metrics (see package metrics).
	Observer Observer
	// MaxActive bounds the transactions driven at once by this process
	// (default 20000). Recovery claims no more than the free slots.
	MaxActive int
	// MaxCalls bounds the branch calls in flight at once across every
	// transaction this process drives (default 256). A call beyond it waits
	// for a free slot (back-pressure: it never fails for lack of one; the
	// wait ends early on abort or shutdown). Each call in flight holds a
	// connection, so this bounds the file descriptors hanging participants
	// can pin; keep it well below the process's open-file limit.
	MaxCalls int
	// RecoverBatch bounds how many transactions one recovery pass claims
	// and resumes (default 500): after a restart over thousands of stuck
	// transactions, they are resumed at most RecoverBatch per
	// RecoverInterval instead of all at once.
	RecoverBatch int
	// ShutdownTimeout bounds how long Close waits for in-flight calls.
	ShutdownTimeout time.Duration
	// MaxTimeout and MaxBranchTimeout are the largest timeout and
	// branch_timeout a submitted spec may ask for (defaults 24h and 5m);
	// a submission above them fails with dtx.ErrInvalid. A spec that asks
	// for none gets the saga default, capped at these.
	MaxTimeout, MaxBranchTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TracerProvider receives the coordinator's spans: one per run of a
	// transaction (a child of its submitter's span when the submission
	// carried a W3C traceparent) and one per branch call under it, whose
	// context the call carries to the participant (see tracing.go for the
	// attributes). Default otel.GetTracerProvider(), which is a no-op
	// until the application installs one.
	TracerProvider trace.TracerProvider
	// Now is the clock (default time.Now).
	Now func() time.Time
	// After, if set, is how the coordinator waits for a retry's backoff or
	// a transaction's deadline (default time.After). A fake clock in tests
	// sets it together with Now.
	After func(d time.Duration) <-chan time.Time
}

func (c *Config) setDefaults() {
	if c.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		c.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RecoverInterval == 0 {
		c.RecoverInterval = DefaultRecoverInterval
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.AlertAfter == 0 {
		c.AlertAfter = DefaultAlertAfter
	}
	if c.MaxActive == 0 {
		c.MaxActive = DefaultMaxActive
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.MaxBranchTimeout == 0 {
		c.MaxBranchTimeout = DefaultMaxBranchTimeout
	}
	if c.MaxCalls == 0 {
		c.MaxCalls = DefaultMaxCalls
	}
	if c.RecoverBatch == 0 {
		c.RecoverBatch = DefaultRecoverBatch
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
}

// Validate reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	if c.LeaseTTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease TTL %v is below 100ms", c.LeaseTTL))
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("retry backoff base %v / max %v: need 0 < base <= max", c.RetryBase, c.RetryMax))
	}
	if c.RecoverInterval <= 0 {
		errs = append(errs, fmt.Errorf("recover interval must be positive"))
	}
	if c.RetryMaxAttempts < 0 || c.RetryMaxAttempts > saga.MaxRetryAttempts {
		errs = append(errs, fmt.Errorf("retry max attempts %d: want 0 (unlimited) to %d", c.RetryMaxAttempts, saga.MaxRetryAttempts))
	}
	if c.MaxActive < 1 || c.AlertAfter < 1 {
		errs = append(errs, fmt.Errorf("max active and alert-after must be positive"))
	}
	if c.MaxTimeout < saga.MinTimeout || c.MaxBranchTimeout < saga.MinTimeout {
		errs = append(errs, fmt.Errorf("max timeout %v / max branch timeout %v: need at least %v", c.MaxTimeout, c.MaxBranchTimeout, saga.MinTimeout))
	}
	if c.MaxCalls < 1 {
		errs = append(errs, fmt.Errorf("max calls %d: want at least 1", c.MaxCalls))
	}
	if c.RecoverBatch < 1 {
		errs = append(errs, fmt.Errorf("recover batch %d: want at least 1", c.RecoverBatch))
	}
	return errors.Join(errs...)
}
