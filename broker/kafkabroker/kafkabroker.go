// Package kafkabroker implements broker.Broker on Apache Kafka with
// franz-go.
//
// # Layout
//
// A topic is a Kafka topic (created with Config.Partitions partitions when
// missing). Message.Key is the record key, so the producer's partitioner
// (murmur2, as Kafka's Java client) keeps a key on one partition; a message
// without a key has a nil record key. Message.ID travels as the record
// header Dtx-Message-Id, which is therefore a reserved header name; a
// record without it (produced by another tool) gets the ID
// "<topic>/<partition>/<offset>". Publish waits for all in-sync replicas
// and uses the idempotent producer.
//
// # Order, redelivery and Attempt
//
// A subscription is a member of the Kafka consumer group named group. Each
// partition assigned to it is handled by its own goroutine, one record at a
// time in offset order. When the handler fails, the goroutine retries the
// same record after a delay (Config.RetryDelay, doubling per attempt up to
// Config.MaxRetryDelay) before it looks at the next one, so a failing
// record holds back the later records of its partition, and so of its key.
// Offsets are committed only up to records whose handler returned nil: every
// Config.CommitInterval, when a partition is revoked, and on Close. A record
// handled but not yet committed when a member crashes is delivered again.
//
// Delivery.Attempt is counted in memory by the member handling the record:
// it restarts at 1 when the record is delivered again after a crash, a
// rebalance or a reopen, since Kafka keeps no delivery count.
package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker"
)

var _ broker.Broker = (*Broker)(nil)

// headerID carries Message.ID.
const headerID = "Dtx-Message-Id"

// Broker is a broker.Broker on Kafka. Its methods are safe for concurrent
// use.
type Broker struct {
	cfg   Config
	seeds []string
	cl    *kgo.Client // producer and admin
	adm   *kadm.Client

	topics sync.Map // topic name -> struct{}, once it is known to exist

	mu     sync.RWMutex // held for reading by Publish and Subscribe
	closed bool

	subsMu sync.Mutex
	subs   map[*Subscription]struct{}
}

// Connect returns a Broker on the Kafka cluster reached through the seed
// brokers ("host:port"); ctx bounds the first contact.
func Connect(ctx context.Context, seeds []string, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, errors.New("kafkabroker: no seed brokers")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), // Publish waits for its acks: do not wait for more records
	}, cfg.ClientOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: new client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafkabroker: reach %v: %w", seeds, err)
	}
	return &Broker{
		cfg: cfg, seeds: seeds, cl: cl, adm: kadm.NewClient(cl),
		subs: map[*Subscription]struct{}{},
	}, nil
}

// topicRE is what Kafka accepts as a topic name.
var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func checkTopic(topic string) error {
	if !topicRE.MatchString(topic) || topic == "." || topic == ".." {
		return fmt.Errorf("kafkabroker: invalid topic %q", topic)
	}
	return nil
}

// ensureTopic creates topic unless it is known to exist.
func (b *Broker) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := b.topics.Load(topic); ok {
		return nil
	}
	resp, err := b.adm.CreateTopic(ctx, b.cfg.Partitions, b.cfg.ReplicationFactor, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafkabroker: create topic %s: %w", topic, err)
	}
	b.topics.Store(topic, struct{}{})
	return nil
}

// Publish produces msgs and returns once every one is acknowledged by all
// in-sync replicas. Records of one key are produced in order; on error some
// of them may have been stored.
func (b *Broker) Publish(ctx context.Context, msgs ...broker.Message) error {
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		if m.ID == "" {
			return errors.New("kafkabroker: message without ID")
		}
		if err := checkTopic(m.Topic); err != nil {
			return fmt.Errorf("kafkabroker: message %s: %w", m.ID, err)
		}
		if _, ok := m.Headers[headerID]; ok {
			return fmt.Errorf("kafkabroker: message %s: header name %s is reserved", m.ID, headerID)
		}
		recs[i] = record(m)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return broker.ErrClosed
	}
	for _, r := range recs {
		if err := b.ensureTopic(ctx, r.Topic); err != nil {
			return err
		}
	}
	if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("kafkabroker: produce: %w", err)
	}
	return nil
}

var _ broker.BatchPublisher = (*Broker)(nil)

// PublishBatch produces msgs together (the client batches them per
// partition, every acknowledgement in flight) and reports each message's
// outcome (see broker.BatchPublisher). A message that is invalid fails
// alone.
func (b *Broker) PublishBatch(ctx context.Context, msgs []broker.Message) []error {
	errs := make([]error, len(msgs))
	failed := false
	fail := func(i int, err error) {
		errs[i], failed = err, true
	}
	recs := make([]*kgo.Record, 0, len(msgs))
	idx := make(map[*kgo.Record]int, len(msgs)) // the index in msgs of each record
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i, m := range msgs {
		switch {
		case b.closed:
			fail(i, broker.ErrClosed)
			continue
		case m.ID == "":
			fail(i, errors.New("kafkabroker: message without ID"))
			continue
		}
		if err := checkTopic(m.Topic); err != nil {
			fail(i, fmt.Errorf("kafkabroker: message %s: %w", m.ID, err))
			continue
		}
		if _, ok := m.Headers[headerID]; ok {
			fail(i, fmt.Errorf("kafkabroker: message %s: header name %s is reserved", m.ID, headerID))
			continue
		}
		if err := b.ensureTopic(ctx, m.Topic); err != nil {
			fail(i, err)
			continue
		}
		r := record(m)
		recs = append(recs, r)
		idx[r] = i
	}
	if len(recs) > 0 {
		// The results come in the order the records completed.
		for _, res := range b.cl.ProduceSync(ctx, recs...) {
			if res.Err != nil {
				i := idx[res.Record]
				fail(i, fmt.Errorf("kafkabroker: produce %s: %w", msgs[i].ID, res.Err))
			}
		}
	}
	if !failed {
		return nil
	}
	return errs
}

func record(m broker.Message) *kgo.Record {
	r := &kgo.Record{Topic: m.Topic, Value: m.Payload}
	if m.Key != "" {
		r.Key = []byte(m.Key)
	}
	r.Headers = make([]kgo.RecordHeader, 0, len(m.Headers)+1)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerID, Value: []byte(m.ID)})
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(m.Headers[k])})
	}
	return r
}

// Close stops every subscription (their running handlers finish first and
// their offsets are committed), then closes the producer. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()

	b.subsMu.Lock()
	subs := slices.Collect(maps.Keys(b.subs))
	b.subsMu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	b.cl.Close()
	return errors.Join(errs...)
}
