package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/backoff"
)

var _ broker.Subscription = (*Subscription)(nil)

// errClosing settles a message that arrived while closing: not handled.
var errClosing = errors.New("natsbroker: subscription closing")

const (
	// fetchBatch is the most messages one pull request asks for; with
	// MaxAckPending 1 they come one after another's ack.
	fetchBatch = 64
	// handbackMargin covers the difference between the client's and the
	// server's clock for a pull request's expiry.
	handbackMargin = 200 * time.Millisecond
)

// Subscription is a running subscription: one goroutine per partition of
// its topic, each handling its partition's messages one at a time.
type Subscription struct {
	b       *Broker
	topic   string
	h       broker.Handler
	hctx    context.Context // handlers' context: not canceled by Close
	cons    []jetstream.Consumer
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// Subscribe creates (or joins) group's durable consumers of topic, one per
// partition, and starts handling messages. ctx bounds the setup; handlers
// get a context that carries ctx's values but is never canceled (Close
// waits for running handlers instead).
func (b *Broker) Subscribe(ctx context.Context, topic, group string, h broker.Handler) (broker.Subscription, error) {
	if err := checkSubject(topic); err != nil {
		return nil, fmt.Errorf("natsbroker: topic: %w", err)
	}
	if group == "" {
		return nil, errors.New("natsbroker: empty group")
	}
	if h == nil {
		return nil, errors.New("natsbroker: nil handler")
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	s := &Subscription{
		b: b, topic: topic, h: h,
		hctx:    context.WithoutCancel(ctx),
		closing: make(chan struct{}),
	}
	for p := range b.partitions {
		c, err := b.consumer(ctx, b.consumerConfig(group, topic, p))
		if err != nil {
			return nil, fmt.Errorf("natsbroker: subscribe %s to %s: %w", group, topic, err)
		}
		s.cons = append(s.cons, c)
	}
	for p, c := range s.cons {
		s.wg.Add(1)
		go s.run(c, b.consumerConfig(group, topic, p))
	}
	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	return s, nil
}

// consumerConfig is the durable consumer of group's partition p of topic.
func (b *Broker) consumerConfig(group, topic string, p int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(group, topic, p),
		Description:   fmt.Sprintf("dtx group %s, topic %s, partition %d", group, topic, p),
		FilterSubject: b.subject(topic, p),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxAckPending: 1, // the partition's order: see the package doc
		MaxDeliver:    -1,
	}
}

// consumer creates (or finds) the consumer of cfg, retrying while a
// cluster elects its leaders.
func (b *Broker) consumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		c, err = b.js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, cfg)
		return err
	})
	return c, err
}

// consumerName is a valid durable name, readable and unique per group,
// topic and partition.
func consumerName(group, topic string, p int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(group + "\x00" + topic))
	return fmt.Sprintf("%s_%s_%d_%08x", clean(group), clean(topic), p, h.Sum32())
}

func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
			return r
		}
		return '-'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// run handles one partition. It pulls with Fetch requests that expire
// after Config.PollWait, rather than with an open-ended iterator, so that closing
// is exact: the worker stops once its last request has ended, and hands
// back what arrives meanwhile. A message the server delivered to a request
// nobody reads any more would wait AckWait for redelivery, holding back its
// partition.
//
// A consumer that is gone (deleted by hand, or lost with the server's
// store) is created again from cfg; it then starts from the partition's
// oldest retained message, and the inbox drops what was handled before.
func (s *Subscription) run(c jetstream.Consumer, cfg jetstream.ConsumerConfig) {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		default:
		}
		expires := time.Now().Add(s.b.cfg.PollWait)
		batch, err := c.Fetch(fetchBatch, jetstream.FetchMaxWait(s.b.cfg.PollWait))
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			s.b.cfg.Logger.Warn("natsbroker: consumer gone, creating it again", "consumer", cfg.Durable, "error", err)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.closing:
					cancel()
				case <-ctx.Done():
				}
			}()
			nc, cerr := s.b.consumer(ctx, cfg)
			cancel()
			if cerr == nil {
				c = nc
				continue
			}
			err = cerr
		}
		if err != nil {
			// The connection is reconnecting, or closed with the broker.
			s.b.cfg.Logger.Debug("natsbroker: fetch", "topic", s.topic, "error", err)
			select {
			case <-s.closing:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for m := range batch.Messages() {
			select {
			case <-s.closing:
				// Hand it back, delayed past this request's end so that
				// it goes to another request (or waits for a restart).
				s.settle(m, errClosing, time.Until(expires)+handbackMargin)
				continue
			default:
			}
			s.handle(m)
		}
		if err := batch.Error(); err != nil {
			s.b.cfg.Logger.Debug("natsbroker: fetch", "topic", s.topic, "error", err)
		}
	}
}

func (s *Subscription) handle(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		s.b.cfg.Logger.Error("natsbroker: message metadata", "topic", s.topic, "error", err)
		_ = m.Nak()
		return
	}
	d := s.delivery(m, meta)

	// Keep the server from redelivering while the handler runs: a timer,
	// not a goroutine, so the common handler that returns well within
	// AckWait costs no goroutine of its own.
	beat := keepAlive(m, s.b.cfg.AckWait/3)
	herr := s.h(s.hctx, d)
	beat.stop()

	s.settle(m, herr, s.retryDelay(d.Attempt))
}

// heartbeat tells the server every period that a message is still being
// worked on (InProgress), until stop.
type heartbeat struct {
	mu      sync.Mutex
	stopped bool
	t       *time.Timer
}

func keepAlive(m jetstream.Msg, period time.Duration) *heartbeat {
	h := &heartbeat{}
	var beat func()
	beat = func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.stopped {
			return
		}
		_ = m.InProgress()
		h.t.Reset(period)
	}
	h.mu.Lock()
	h.t = time.AfterFunc(period, beat)
	h.mu.Unlock()
	return h
}

// stop ends the beats; none is sent once it returns (a beat running now
// finishes first).
func (h *heartbeat) stop() {
	h.mu.Lock()
	h.stopped = true
	h.t.Stop()
	h.mu.Unlock()
}

// settle acknowledges m after a handler's success, or naks it so that it is
// delivered again after delay. Both wait for the server's confirmation: the
// server queues acknowledgements, and a broker closing right after an
// unconfirmed nak could lose it. The nak always carries a delay, since the
// server stores the resulting due time with the consumer, while a plain nak
// lives in memory only and, across a restart, the message would wait for
// AckWait.
//
// A confirmation that fails for a passing reason (the consumer's leader
// went away with its node and another is being elected) is asked again,
// for up to AckWait: past it the server redelivers anyway.
func (s *Subscription) settle(m jetstream.Msg, herr error, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), min(10*time.Second, s.b.cfg.AckWait))
	defer cancel()
	err := s.b.retry(ctx, func(ctx context.Context) error {
		if herr == nil {
			return m.DoubleAck(ctx)
		}
		body := fmt.Sprintf(`-NAK {"delay": %d}`, max(delay, time.Millisecond).Nanoseconds())
		_, err := s.b.nc.RequestWithContext(ctx, m.Reply(), []byte(body))
		return err
	})
	if err != nil {
		// The server redelivers after AckWait.
		s.b.cfg.Logger.Error("natsbroker: acknowledge", "topic", s.topic, "error", err)
	}
}

func (s *Subscription) delivery(m jetstream.Msg, meta *jetstream.MsgMetadata) broker.Delivery {
	d := broker.Delivery{Attempt: int(meta.NumDelivered)}
	d.Topic = s.topic
	d.Payload = m.Data()
	for k, vs := range m.Headers() {
		if len(vs) == 0 {
			continue
		}
		switch {
		case k == jetstream.MsgIDHeader:
			d.ID = strings.TrimPrefix(vs[0], s.topic+":")
		case k == headerKey:
			d.Key = vs[0]
		case reservedHeader(k):
		default:
			if d.Headers == nil {
				d.Headers = map[string]string{}
			}
			d.Headers[k] = vs[0]
		}
	}
	if d.ID == "" { // published by something else than this package
		d.ID = fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
	}
	return d
}

// retryDelay is RetryDelay doubled per earlier attempt, capped at
// MaxRetryDelay, with equal jitter (internal/backoff).
func (s *Subscription) retryDelay(attempt int) time.Duration {
	return backoff.Delay(s.b.cfg.RetryDelay, s.b.cfg.MaxRetryDelay, attempt)
}

// Close stops the subscription: no handler starts after it returns, and
// running handlers finish first; it takes up to a second more while the
// last pull requests end. It is idempotent; do not call it from a handler
// of the same subscription.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		s.stop()
		s.b.subsMu.Lock()
		delete(s.b.subs, s)
		s.b.subsMu.Unlock()
	})
	return nil
}

func (s *Subscription) stop() {
	close(s.closing)
	s.wg.Wait()
}
