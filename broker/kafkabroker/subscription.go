package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/backoff"
)

var _ broker.Subscription = (*Subscription)(nil)

const (
	// pollRecords bounds the records taken from the client per poll.
	pollRecords = 1000
	// maxQueued pauses fetching a partition whose worker has this many
	// records waiting; fetching resumes below half of it.
	maxQueued = 1000
)

// Subscription is a member of a consumer group: one goroutine polls the
// client and hands each partition's records to that partition's worker.
type Subscription struct {
	b     *Broker
	topic string
	h     broker.Handler
	hctx  context.Context // handlers' context: not canceled by Close
	cl    *kgo.Client

	cancelPoll context.CancelFunc
	pollDone   chan struct{}

	mu      sync.Mutex
	closing bool
	workers map[int32]*worker

	once     sync.Once
	closeErr error
}

// Subscribe joins group, creating topic if it is missing, and starts
// handling the partitions assigned to this member. A new group starts at
// the oldest retained record. ctx bounds the setup; handlers get a context
// that carries ctx's values but is never canceled (Close waits for running
// handlers instead).
func (b *Broker) Subscribe(ctx context.Context, topic, group string, h broker.Handler) (broker.Subscription, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	if group == "" {
		return nil, errors.New("kafkabroker: empty group")
	}
	if h == nil {
		return nil, errors.New("kafkabroker: nil handler")
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	if err := b.ensureTopic(ctx, topic); err != nil {
		return nil, err
	}
	s := &Subscription{
		b: b, topic: topic, h: h,
		hctx:     context.WithoutCancel(ctx),
		pollDone: make(chan struct{}),
		workers:  map[int32]*worker{},
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(b.seeds...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(b.cfg.CommitInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	}, b.cfg.sessionOptions()...)
	opts = append(opts, b.cfg.ClientOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkabroker: subscribe %s to %s: %w", group, topic, err)
	}
	s.cl = cl
	pctx, cancel := context.WithCancel(context.Background())
	s.cancelPoll = cancel
	go s.poll(pctx)

	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	return s, nil
}

func (s *Subscription) poll(ctx context.Context) {
	defer close(s.pollDone)
	for {
		fs := s.cl.PollRecords(ctx, pollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			s.cl.AllowRebalance()
			return
		}
		failed := false
		fs.EachError(func(topic string, p int32, err error) {
			failed = true
			s.b.cfg.Logger.Warn("kafkabroker: fetch", "topic", topic, "partition", p, "error", err)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				s.worker(p.Partition).push(p.Records)
			}
		})
		s.cl.AllowRebalance()
		if failed && fs.NumRecords() == 0 {
			select { // do not spin on a persistent fetch error
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// worker returns partition p's worker, starting it if needed. Records are
// polled only for assigned partitions, whose workers started in assigned;
// this is a safety net that never drops a polled record.
func (s *Subscription) worker(p int32) *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(p)
}

func (s *Subscription) startLocked(p int32) *worker {
	if w := s.workers[p]; w != nil {
		return w
	}
	w := &worker{
		s: s, partition: p,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	s.workers[p] = w
	go w.run()
	return w
}

func (s *Subscription) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	for _, p := range m[s.topic] {
		s.startLocked(p)
	}
}

// revoked stops the revoked partitions' workers, then commits what they
// handled, so that the partitions' next owner starts right after it. The
// client also calls it at the end of a session that revoked nothing.
func (s *Subscription) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.stopWorkers(m[s.topic])
	if err := cl.CommitMarkedOffsets(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.b.cfg.Logger.Error("kafkabroker: commit on revoke", "topic", s.topic, "error", err)
	}
}

// lost stops the lost partitions' workers; their offsets cannot be
// committed any more.
func (s *Subscription) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.stopWorkers(m[s.topic])
}

// stopWorkers stops the workers of partitions and waits for their running
// handlers.
func (s *Subscription) stopWorkers(partitions []int32) {
	s.mu.Lock()
	var ws []*worker
	for _, p := range partitions {
		if w := s.workers[p]; w != nil {
			ws = append(ws, w)
		}
	}
	for _, w := range ws {
		delete(s.workers, w.partition)
		close(w.quit)
	}
	s.mu.Unlock()
	for _, w := range ws {
		<-w.done
		w.mu.Lock()
		if w.paused { // pausing outlives the assignment
			s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: {w.partition}})
		}
		w.mu.Unlock()
	}
}

// Close leaves the group: no handler starts after it returns, running
// handlers finish first, and the offsets of handled records are committed.
// It is idempotent; do not call it from a handler of the same subscription.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancelPoll()
		<-s.pollDone
		s.mu.Lock()
		all := slices.Collect(maps.Keys(s.workers))
		s.mu.Unlock()
		s.stopWorkers(all)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.cl.CommitMarkedOffsets(ctx); err != nil {
			s.closeErr = fmt.Errorf("kafkabroker: commit on close: %w", err)
		}
		s.cl.Close()
		s.b.subsMu.Lock()
		delete(s.b.subs, s)
		s.b.subsMu.Unlock()
	})
	return s.closeErr
}

// worker handles one partition's records in order.
type worker struct {
	s         *Subscription
	partition int32
	wake      chan struct{} // a record was queued
	quit      chan struct{} // closed to stop
	done      chan struct{} // closed when stopped

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
}

func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= maxQueued {
		w.paused = true
		w.s.cl.PauseFetchPartitions(map[string][]int32{w.s.topic: {w.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next returns the next queued record, or nil once the worker must stop.
func (w *worker) next() *kgo.Record {
	for {
		select {
		case <-w.quit:
			return nil
		default:
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if w.paused && len(w.queue) < maxQueued/2 {
				w.paused = false
				w.s.cl.ResumeFetchPartitions(map[string][]int32{w.s.topic: {w.partition}})
			}
			w.mu.Unlock()
			return r
		}
		w.mu.Unlock()
		select {
		case <-w.quit:
			return nil
		case <-w.wake:
		}
	}
}

func (w *worker) run() {
	defer close(w.done)
	for r := w.next(); r != nil; r = w.next() {
		if !w.handle(r) {
			return
		}
	}
}

// handle runs the handler on r until it succeeds, then marks r for
// committing. It returns false if the worker was stopped while waiting to
// retry.
func (w *worker) handle(r *kgo.Record) bool {
	s := w.s
	for attempt := 1; ; attempt++ {
		if s.h(s.hctx, delivery(r, attempt)) == nil {
			s.cl.MarkCommitRecords(r)
			return true
		}
		t := time.NewTimer(s.retryDelay(attempt))
		select {
		case <-w.quit:
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// delivery builds a fresh Delivery per attempt, so that a handler changing
// its Headers does not affect the next attempt.
func delivery(r *kgo.Record, attempt int) broker.Delivery {
	d := broker.Delivery{Attempt: attempt}
	d.Topic = r.Topic
	d.Key = string(r.Key)
	d.Payload = r.Value
	for _, h := range r.Headers {
		if h.Key == headerID {
			d.ID = string(h.Value)
			continue
		}
		if d.Headers == nil {
			d.Headers = make(map[string]string, len(r.Headers))
		}
		d.Headers[h.Key] = string(h.Value)
	}
	if d.ID == "" { // produced by something else than this package
		d.ID = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	}
	return d
}

// retryDelay is RetryDelay doubled per earlier attempt, capped at
// MaxRetryDelay, with equal jitter (internal/backoff).
func (s *Subscription) retryDelay(attempt int) time.Duration {
	return backoff.Delay(s.b.cfg.RetryDelay, s.b.cfg.MaxRetryDelay, attempt)
}
