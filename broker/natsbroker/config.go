package natsbroker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultStream         = "DTX"
	DefaultSubjectPrefix  = "dtx"
	DefaultPartitions     = 16
	DefaultReplicas       = 1
	DefaultMaxAge         = 7 * 24 * time.Hour
	DefaultAckWait        = 5 * time.Second
	DefaultRetryDelay     = 200 * time.Millisecond
	DefaultMaxRetryDelay  = 10 * time.Second
	DefaultStartTimeout   = 30 * time.Second
	DefaultPollWait       = time.Second
	DefaultRequestTimeout = 3 * time.Second
)

// Config configures a Broker. The zero value is usable: zero fields take
// the defaults named in their comments.
type Config struct {
	// Stream names the JetStream stream holding every topic; default
	// DefaultStream. It is created if missing; an existing stream is used
	// as it is.
	Stream string
	// SubjectPrefix is the first subject token: a message of topic T with
	// partition P is stored under "<prefix>.T.P"; default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Partitions is how many ordered lanes each topic has: keys are hashed
	// onto them, and every group handles each lane one message at a time;
	// default DefaultPartitions. It is recorded in the stream when the
	// stream is created, and the recorded value wins afterwards, since
	// changing it would reorder keys.
	Partitions int
	// Replicas is the stream's replication factor when the broker creates
	// it (a clustered external server); default DefaultReplicas.
	Replicas int
	// MaxAge is how long the stream retains messages when the broker
	// creates it; default DefaultMaxAge.
	MaxAge time.Duration
	// AckWait is how long the server waits for an acknowledgement before
	// it redelivers; a running handler keeps extending it. Default
	// DefaultAckWait.
	AckWait time.Duration
	// RetryDelay is the delay before the first redelivery after a handler
	// error; it doubles with each attempt up to MaxRetryDelay. Defaults
	// DefaultRetryDelay and DefaultMaxRetryDelay.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// PollWait is how long one pull request waits for messages. Closing a
	// subscription waits for its pending requests, so at most this long;
	// a shorter wait closes faster and sends more requests to an idle
	// server. Default DefaultPollWait.
	PollWait time.Duration
	// RequestTimeout bounds one attempt of a request to the server (a
	// publish awaiting its ack, creating a stream or consumer). A request
	// that ran out of it, or failed for a passing reason (no stream
	// leader while a clustered stream elects one, the connection lost
	// while it moves to another node), is sent again, with a growing
	// delay up to a second, until the caller's context ends; a re-sent
	// publish is dropped by the server's duplicate check if the first one
	// was stored after all. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives errors the broker handles itself (a failed ack);
	// default slog.Default().
	Logger *slog.Logger

	// The fields below apply to OpenEmbedded only.

	// Listen, if set, is a host:port where the embedded server also takes
	// client connections (e.g. "127.0.0.1:4222", or port 0 for a random
	// one; see Broker.ClientURL). Empty: the broker connects in-process
	// and the server listens nowhere.
	Listen string
	// SyncAlways makes the embedded server fsync every write. Without it
	// a stored message survives the process being killed (kill -9) but
	// not a power loss before the next periodic sync.
	SyncAlways bool
	// StartTimeout bounds starting the embedded server (recovering a large
	// store can take a while); default DefaultStartTimeout.
	StartTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.PollWait == 0 {
		c.PollWait = DefaultPollWait
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of c (after defaults) at once.
func (c *Config) Validate() error {
	var errs []error
	if strings.ContainsAny(c.Stream, ".*> \t\r\n/\\") {
		errs = append(errs, fmt.Errorf("natsbroker: invalid stream name %q", c.Stream))
	}
	if err := checkSubject(c.SubjectPrefix); err != nil {
		errs = append(errs, fmt.Errorf("natsbroker: invalid subject prefix: %w", err))
	}
	if c.Partitions < 1 || c.Partitions > 4096 {
		errs = append(errs, fmt.Errorf("natsbroker: partitions %d out of 1..4096", c.Partitions))
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("natsbroker: replicas %d below 1", c.Replicas))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"max age", c.MaxAge}, {"ack wait", c.AckWait}, {"retry delay", c.RetryDelay}, {"max retry delay", c.MaxRetryDelay}, {"start timeout", c.StartTimeout}, {"poll wait", c.PollWait}, {"request timeout", c.RequestTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("natsbroker: negative %s %v", d.name, d.v))
		}
	}
	if c.AckWait > 0 && c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("natsbroker: ack wait %v below 1s", c.AckWait))
	}
	return errors.Join(errs...)
}

// checkSubject accepts dot-separated NATS subject tokens without wildcards.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("%q has an empty token", s)
		}
		if strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("%q has a wildcard or white space", s)
		}
	}
	return nil
}
