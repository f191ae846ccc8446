package pgtail

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/outbox"
)

// Defaults for Config.
const (
	DefaultBatchSize          = outbox.DefaultBatchSize
	DefaultStatusInterval     = 10 * time.Second
	DefaultAlertRetainedBytes = 1 << 30 // 1 GiB
	DefaultRetryBase          = outbox.DefaultRetryBase
	DefaultRetryMax           = outbox.DefaultRetryMax
)

// ErrInvalidConfig is returned (wrapped) by New for a bad Config.
var ErrInvalidConfig = errors.New("pgtail: invalid config")

// Config configures a Relay. Zero values take the defaults; Slot is
// required.
type Config struct {
	// Slot names the relay's logical replication slot: lower-case letters,
	// digits and underscores, at most 63. It is created if missing. Give
	// each outbox (each relay group) a slot of its own.
	Slot string
	// Publication names the publication of the outbox table's inserts
	// (default "<table name>_pub"), created if missing; same rules as Slot.
	Publication string
	// Table is the outbox table (default outbox.DefaultTable), as
	// outbox.Outbox.Table.
	Table string
	// BatchSize is the most messages published at once (default 100, at
	// most outbox.MaxBatchSize). Transactions that committed while a batch
	// was being published go out together in the next one.
	BatchSize int
	// Retention, as outbox.RelayConfig.Retention: zero deletes the rows of
	// a batch once the broker acknowledged it; a positive retention marks
	// them published and deletes them after this long.
	Retention time.Duration
	// StatusInterval is how often the relay reports its confirmed position
	// to the server (default 10s) and checks how much WAL its slot retains.
	StatusInterval time.Duration
	// AlertRetainedBytes: the relay logs a warning when its slot retains
	// more WAL than this (default 1 GiB; negative: never).
	AlertRetainedBytes int64
	// RetryBase and RetryMax bound the backoff after a failed publish or a
	// lost connection (defaults 100ms, 10s). A message is retried until
	// the broker takes it (there are no dead letters here: giving a
	// message up would break the order of its key).
	RetryBase, RetryMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

var identRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// validate checks c and fills in the defaults.
func (c *Config) validate() (appdb.Table, error) {
	if !identRE.MatchString(c.Slot) {
		return appdb.Table{}, fmt.Errorf("%w: Slot %q (lower-case letters, digits and _, 1 to 63)", ErrInvalidConfig, c.Slot)
	}
	if c.Table == "" {
		c.Table = outbox.DefaultTable
	}
	t, err := appdb.ParseTable(c.Table, len("_unpublished"))
	if err != nil {
		return appdb.Table{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Publication == "" {
		c.Publication = lower(t.Name) + "_pub"
	}
	if !identRE.MatchString(c.Publication) {
		return appdb.Table{}, fmt.Errorf("%w: Publication %q (lower-case letters, digits and _, 1 to 63)", ErrInvalidConfig, c.Publication)
	}
	switch {
	case c.BatchSize < 0 || c.BatchSize > outbox.MaxBatchSize:
		return appdb.Table{}, fmt.Errorf("%w: BatchSize %d (0 to %d)", ErrInvalidConfig, c.BatchSize, outbox.MaxBatchSize)
	case c.Retention < 0, c.StatusInterval < 0, c.RetryBase < 0, c.RetryMax < 0:
		return appdb.Table{}, fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.AlertRetainedBytes == 0 {
		c.AlertRetainedBytes = DefaultAlertRetainedBytes
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.RetryMax < c.RetryBase {
		c.RetryMax = c.RetryBase
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return t, nil
}

// lower folds an unquoted SQL identifier as PostgreSQL does.
func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
