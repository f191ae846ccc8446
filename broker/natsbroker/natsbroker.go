// Package natsbroker implements broker.Broker on NATS JetStream, either on
// a NATS server embedded in the process with file storage (OpenEmbedded,
// the default mode of dtx: stored messages survive kill -9) or on an
// external server or cluster (Connect).
//
// # Layout
//
// One stream (Config.Stream) holds every topic under the subjects
// "<prefix>.>". A message of topic T is stored under "<prefix>.T.P", where
// the partition P is a hash of its Key (of its ID when it has no key) modulo
// Config.Partitions. "T:<Message.ID>" travels as the Nats-Msg-Id header, so
// the server also drops a duplicate publish of an ID to a topic within its
// duplicate window (two minutes by default); the key
// travels as the Dtx-Key header. Header names starting with "Nats-" and the
// name "Dtx-Key" are therefore reserved.
//
// # Order and redelivery
//
// A group has one durable pull consumer per topic partition, filtered on the
// partition's subject, with MaxAckPending 1: the server hands out a
// partition's next message only after the previous one was acknowledged, so
// a message that is being retried holds back the later messages of its
// partition, and so of its key, across all members of the group. Different
// partitions are handled concurrently, one goroutine per partition in each
// member. A handler error naks the message with a delay (Config.RetryDelay,
// doubling per attempt up to Config.MaxRetryDelay); a running handler keeps
// extending the server's AckWait. Delivery.Attempt is the server's delivery
// count (NumDelivered), which survives restarts; it may skip a number when
// a closing member hands back a message it received but did not handle.
//
// Members pull with requests that expire after a second, so that closing
// a subscription ends cleanly (no message is left delivered to a member
// that is gone, which would hold back its partition for AckWait); Close
// therefore takes up to a second.
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtxhq/dtx/broker"
)

var _ broker.Broker = (*Broker)(nil)

const (
	headerKey = "Dtx-Key"
	// metaPartitions records Config.Partitions in the stream's metadata.
	metaPartitions = "dtx_partitions"
	// asyncWindow bounds the publishes awaiting their acks in one Publish.
	asyncWindow = 256
)

// Broker is a broker.Broker on NATS JetStream. Its methods are safe for
// concurrent use.
type Broker struct {
	cfg        Config
	srv        *server.Server // embedded server, or nil
	nc         *nats.Conn
	js         jetstream.JetStream
	partitions int

	mu     sync.RWMutex // held for reading by Publish and Subscribe
	closed bool

	subsMu sync.Mutex
	subs   map[*Subscription]struct{}
}

// OpenEmbedded starts a NATS server with JetStream in this process, storing
// its data in dir (created if needed), and returns a Broker connected to
// it in-process. Reopening the same dir finds every stored message and
// consumer group again. Close stops the server.
func OpenEmbedded(ctx context.Context, dir string, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("natsbroker: empty store directory")
	}
	opts := &server.Options{
		ServerName: "dtx-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: cfg.SyncAlways,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: listen address: %w", err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("natsbroker: listen port: %w", err)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: create embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(startTimeout(ctx, cfg.StartTimeout)) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsbroker: embedded server in %s not ready within %v", dir, cfg.StartTimeout)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("dtx"))
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsbroker: connect to embedded server: %w", err)
	}
	b, err := open(ctx, cfg, nc)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	b.srv = srv
	return b, nil
}

// Connect returns a Broker on the NATS server (or cluster) at url, which
// must have JetStream enabled. For a cluster, url lists several of its
// servers separated by commas ("nats://a:4222,nats://b:4222"); the client
// also learns the others from the server. The connection reconnects on its
// own after losing its server, to any other, and requests that fail while
// it does, or while a clustered stream elects a leader, are retried (see
// Config.RequestTimeout).
func Connect(ctx context.Context, url string, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("dtx"), nats.MaxReconnects(-1),
		nats.Timeout(startTimeout(ctx, 10*time.Second)))
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect to %s: %w", url, err)
	}
	return open(ctx, cfg, nc)
}

func startTimeout(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < def {
			return max(d, time.Millisecond)
		}
	}
	return def
}

// open finds or creates the stream; it closes nc on error.
func open(ctx context.Context, cfg Config, nc *nats.Conn) (*Broker, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	b := &Broker{cfg: cfg, nc: nc, js: js, subs: map[*Subscription]struct{}{}}
	if err := b.ensureStream(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// ensureStream finds or creates the stream, retrying while a cluster
// elects its leaders.
func (b *Broker) ensureStream(ctx context.Context) error {
	var s jetstream.Stream
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		s, err = b.findOrCreateStream(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("natsbroker: stream %s: %w", b.cfg.Stream, err)
	}
	b.partitions = b.cfg.Partitions
	if v, ok := s.CachedInfo().Config.Metadata[metaPartitions]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("natsbroker: stream %s: bad %s %q", b.cfg.Stream, metaPartitions, v)
		}
		b.partitions = n
	}
	return nil
}

func (b *Broker) findOrCreateStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        b.cfg.Stream,
			Description: "dtx messages",
			Subjects:    []string{b.cfg.SubjectPrefix + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      b.cfg.MaxAge,
			Replicas:    b.cfg.Replicas,
			Metadata:    map[string]string{metaPartitions: strconv.Itoa(b.cfg.Partitions)},
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created concurrently
			s, err = b.js.Stream(ctx, b.cfg.Stream)
		}
	}
	return s, err
}

// ClientURL returns the URL where the embedded server takes clients when
// Config.Listen was set, else "".
func (b *Broker) ClientURL() string {
	if b.srv == nil || b.cfg.Listen == "" {
		return ""
	}
	return b.srv.ClientURL()
}

// Publish stores msgs and returns once the server acknowledged every one
// (durably stored on the stream's replicas). Messages of one call are sent
// in order; on error some of them may have been stored.
func (b *Broker) Publish(ctx context.Context, msgs ...broker.Message) error {
	for i := range msgs {
		if err := checkMessage(&msgs[i]); err != nil {
			return err
		}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return broker.ErrClosed
	}
	for len(msgs) > 0 {
		window := msgs[:min(len(msgs), asyncWindow)]
		msgs = msgs[len(window):]
		// A failed attempt sends again from the first message not
		// acknowledged: the messages after it that were stored are
		// dropped as duplicates, so after a failure a later message of
		// the window may be stored before an earlier one (the outbox
		// relays never put two messages of a key in one call).
		err := b.retry(ctx, func(ctx context.Context) error {
			acked, err := b.publishWindow(ctx, window)
			window = window[acked:]
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// publishWindow publishes msgs and returns how many of them, from the
// first, the server acknowledged.
func (b *Broker) publishWindow(ctx context.Context, msgs []broker.Message) (int, error) {
	if len(msgs) == 1 {
		if _, err := b.js.PublishMsg(ctx, b.natsMsg(&msgs[0])); err != nil {
			return 0, fmt.Errorf("natsbroker: publish %s: %w", msgs[0].ID, err)
		}
		return 1, nil
	}
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	var sendErr error
	for i := range msgs {
		f, err := b.js.PublishMsgAsync(b.natsMsg(&msgs[i]))
		if err != nil {
			sendErr = fmt.Errorf("natsbroker: publish %s: %w", msgs[i].ID, err)
			break
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return i, fmt.Errorf("natsbroker: publish %s: %w", msgs[i].ID, err)
		case <-ctx.Done():
			return i, fmt.Errorf("natsbroker: publish %s: %w", msgs[i].ID, ctx.Err())
		}
	}
	return len(acks), sendErr
}

var _ broker.BatchPublisher = (*Broker)(nil)

// PublishBatch publishes msgs asynchronously, up to asyncWindow
// acknowledgements in flight, and reports each message's outcome (see
// broker.BatchPublisher). A message that is invalid fails alone.
func (b *Broker) PublishBatch(ctx context.Context, msgs []broker.Message) []error {
	errs := make([]error, len(msgs))
	failed := false
	fail := func(i int, err error) {
		errs[i], failed = err, true
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	type pending struct {
		i   int
		ack jetstream.PubAckFuture
	}
	window := make([]pending, 0, min(len(msgs), asyncWindow))
	drain := func() {
		for _, p := range window {
			select {
			case <-p.ack.Ok():
			case err := <-p.ack.Err():
				fail(p.i, fmt.Errorf("natsbroker: publish %s: %w", msgs[p.i].ID, err))
			case <-ctx.Done():
				fail(p.i, fmt.Errorf("natsbroker: publish %s: %w", msgs[p.i].ID, ctx.Err()))
			}
		}
		window = window[:0]
	}
	for i := range msgs {
		switch {
		case b.closed:
			fail(i, broker.ErrClosed)
			continue
		case ctx.Err() != nil:
			fail(i, fmt.Errorf("natsbroker: publish %s: %w", msgs[i].ID, ctx.Err()))
			continue
		}
		if err := checkMessage(&msgs[i]); err != nil {
			fail(i, err)
			continue
		}
		f, err := b.js.PublishMsgAsync(b.natsMsg(&msgs[i]))
		if err != nil {
			fail(i, fmt.Errorf("natsbroker: publish %s: %w", msgs[i].ID, err))
			continue
		}
		window = append(window, pending{i, f})
		if len(window) == cap(window) {
			drain()
		}
	}
	drain()
	if !failed {
		return nil
	}
	return errs
}

func (b *Broker) natsMsg(m *broker.Message) *nats.Msg {
	nm := &nats.Msg{
		Subject: b.subject(m.Topic, b.partition(m)),
		Header:  make(nats.Header, len(m.Headers)+2),
		Data:    m.Payload,
	}
	// Set the map directly: nats.Header's methods would not keep a name's
	// case in future versions either way, and the names are checked.
	nm.Header[jetstream.MsgIDHeader] = []string{msgID(m.Topic, m.ID)}
	if m.Key != "" {
		nm.Header[headerKey] = []string{m.Key}
	}
	for k, v := range m.Headers {
		nm.Header[k] = []string{v}
	}
	return nm
}

// msgID is the Nats-Msg-Id of a message: the server drops a message whose
// Nats-Msg-Id it stored within its duplicate window, stream-wide, so the
// topic is part of it and the same ID may be published on several topics.
func msgID(topic, id string) string { return topic + ":" + id }

func (b *Broker) subject(topic string, partition int) string {
	return b.cfg.SubjectPrefix + "." + topic + "." + strconv.Itoa(partition)
}

func (b *Broker) partition(m *broker.Message) int {
	k := m.Key
	if k == "" {
		k = m.ID
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k))
	return int(h.Sum32() % uint32(b.partitions))
}

// checkMessage rejects what could not travel through NATS unchanged.
func checkMessage(m *broker.Message) error {
	if m.ID == "" {
		return errors.New("natsbroker: message without ID")
	}
	if err := checkSubject(m.Topic); err != nil {
		return fmt.Errorf("natsbroker: message %s: topic: %w", m.ID, err)
	}
	if err := checkValue(m.ID); err != nil {
		return fmt.Errorf("natsbroker: message ID %q: %w", m.ID, err)
	}
	if err := checkValue(m.Key); err != nil {
		return fmt.Errorf("natsbroker: message %s: key: %w", m.ID, err)
	}
	for k, v := range m.Headers {
		if k == "" || strings.ContainsAny(k, ": \t\r\n") {
			return fmt.Errorf("natsbroker: message %s: invalid header name %q", m.ID, k)
		}
		if reservedHeader(k) {
			return fmt.Errorf("natsbroker: message %s: header name %q is reserved", m.ID, k)
		}
		if err := checkValue(v); err != nil {
			return fmt.Errorf("natsbroker: message %s: header %s: %w", m.ID, k, err)
		}
	}
	return nil
}

// checkValue rejects header values NATS would not carry unchanged: line
// breaks end a header, leading blanks are trimmed.
func checkValue(v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return errors.New("contains a line break")
	}
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return errors.New("starts with a blank")
	}
	return nil
}

func reservedHeader(k string) bool {
	return strings.EqualFold(k, headerKey) || (len(k) >= 5 && strings.EqualFold(k[:5], "Nats-"))
}

// Close stops every subscription (their running handlers finish first),
// then disconnects, then stops the embedded server. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()

	b.subsMu.Lock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.subsMu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	var err error
	if ferr := b.nc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = fmt.Errorf("natsbroker: flush: %w", ferr)
	}
	b.nc.Close()
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return err
}
