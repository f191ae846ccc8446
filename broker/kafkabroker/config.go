package kafkabroker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of Config.
const (
	DefaultPartitions        = 8
	DefaultReplicationFactor = -1 // the cluster's default.replication.factor
	DefaultRetryDelay        = 200 * time.Millisecond
	DefaultMaxRetryDelay     = 10 * time.Second
	DefaultCommitInterval    = time.Second
)

// Config configures a Broker. The zero value is usable: zero fields take
// the defaults named in their comments.
type Config struct {
	// Partitions is the partition count of topics the broker creates (it
	// creates a missing topic on first Publish or Subscribe); default
	// DefaultPartitions. Existing topics are used as they are.
	Partitions int32
	// ReplicationFactor of topics the broker creates; default
	// DefaultReplicationFactor.
	ReplicationFactor int16
	// RetryDelay is the delay before handling a record again after a
	// handler error; it doubles with each attempt up to MaxRetryDelay.
	// Defaults DefaultRetryDelay and DefaultMaxRetryDelay.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// CommitInterval is how often the offsets of handled records are
	// committed; default DefaultCommitInterval. Closing a subscription and
	// losing a partition in a rebalance commit at once.
	CommitInterval time.Duration
	// SessionTimeout is how long the group waits for a member that stopped
	// sending heartbeats (a killed process) before it hands the member's
	// partitions to the others; until then their records wait. Zero keeps
	// the client's default (45s). The Kafka server bounds it with its
	// group.min.session.timeout.ms and group.max.session.timeout.ms (6s
	// and 30 minutes by default). Heartbeats go every third of it, at most
	// every 3s. A clean Close leaves the group at once, whatever the value.
	SessionTimeout time.Duration
	// ClientOptions are added to the options of every franz-go client
	// the broker makes (TLS, SASL, timeouts, a logger...).
	ClientOptions []kgo.Opt
	// Logger receives errors the broker handles itself (a failed commit);
	// default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of c (after defaults) at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafkabroker: partitions %d below 1", c.Partitions))
	}
	if c.ReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("kafkabroker: replication factor %d below -1", c.ReplicationFactor))
	}
	if c.RetryDelay < 0 || c.MaxRetryDelay < 0 {
		errs = append(errs, errors.New("kafkabroker: negative retry delay"))
	}
	if c.SessionTimeout < 0 || (c.SessionTimeout > 0 && c.SessionTimeout < time.Second) {
		errs = append(errs, fmt.Errorf("kafkabroker: session timeout %v below 1s", c.SessionTimeout))
	}
	if c.CommitInterval < 0 {
		errs = append(errs, errors.New("kafkabroker: negative commit interval"))
	}
	return errors.Join(errs...)
}

// sessionOptions are the group-session options of SessionTimeout.
func (c *Config) sessionOptions() []kgo.Opt {
	if c.SessionTimeout <= 0 {
		return nil
	}
	return []kgo.Opt{
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
	}
}
