package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// ErrNotDrivenHere is returned by Abort for a transaction whose lease is
// held by another coordinator process.
var ErrNotDrivenHere = errors.New("coordinator: transaction is driven by another coordinator")

// ErrPastPivot is returned by Abort for a saga that can only move forward.
var ErrPastPivot = errors.New("coordinator: saga is past its pivot and can no longer be compensated (an operator can stop it with a forced abort)")

// Coordinator drives global transactions stored in a dtx.Store.
type Coordinator struct {
	cfg       Config
	store     dtx.Store
	transport dtx.Transport
	log       *slog.Logger
	tracer    trace.Tracer

	// calls holds one token per branch call in flight (calls.go).
	calls chan struct{}

	mu     sync.Mutex
	active map[string]*run
	// parked: transactions of ours with an operation that waits for an
	// operator (run.park); Attention lists them whatever its filter.
	parked  map[string][]string
	waiters map[string][]chan *dtx.TxDetail
	// forcing: transactions a forced abort is taking over (force.go); a
	// resubmission does not resume them meanwhile.
	forcing map[string]bool

	started  bool
	stopping chan struct{} // closed by Close: no new work
	hardCtx  context.Context
	hardStop context.CancelFunc // cancels in-flight calls after the drain
	loopWG   sync.WaitGroup     // recovery and renewal loops
	// renewedAt is when our leases were last known extended (UnixNano).
	renewedAt atomic.Int64
	runWG     sync.WaitGroup // drivers
	closeOne  sync.Once
	// workers run the drivers and their branch calls on goroutines kept
	// between uses (until workerIdle without work, or Close).
	workers *workers
}

// workerIdle is how long a driver or call goroutine is kept without work.
const workerIdle = 10 * time.Second

// New returns a coordinator. Call Start to resume unfinished transactions
// and begin lease renewal; Close to stop.
func New(store dtx.Store, transport dtx.Transport, cfg Config) (*Coordinator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator config: %w", err)
	}
	hard, cancel := context.WithCancel(context.Background())
	return &Coordinator{
		cfg: cfg, store: store, transport: transport,
		tracer:   cfg.TracerProvider.Tracer(TracerName),
		log:      cfg.Logger.With(slog.String("component", "coordinator"), slog.String("owner", cfg.Owner)),
		calls:    make(chan struct{}, cfg.MaxCalls),
		active:   map[string]*run{},
		parked:   map[string][]string{},
		waiters:  map[string][]chan *dtx.TxDetail{},
		forcing:  map[string]bool{},
		stopping: make(chan struct{}),
		hardCtx:  hard, hardStop: cancel,
		workers: newWorkers(workerIdle, hard.Done()),
	}, nil
}

// Owner returns the lease owner name of this coordinator.
func (c *Coordinator) Owner() string { return c.cfg.Owner }

// Store returns the coordinator's store.
func (c *Coordinator) Store() dtx.Store { return c.store }

// Start claims a first batch of unfinished transactions (at most
// Config.RecoverBatch) at once, then keeps claiming expired leases, a batch
// per RecoverInterval, and renewing its own in the background until Close.
func (c *Coordinator) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return nil
	}
	c.started = true
	c.mu.Unlock()
	c.renewedAt.Store(c.cfg.Now().UnixNano())
	if err := c.recoverOnce(ctx); err != nil {
		return fmt.Errorf("initial recovery: %w", err)
	}
	c.loopWG.Add(2)
	go c.recoveryLoop()
	go c.renewLoop()
	return nil
}

// Close stops taking work, lets in-flight branch calls finish (bounded by
// ShutdownTimeout), records their outcomes and releases the leases of
// unfinished transactions so another coordinator can take them over at once.
// It is idempotent.
func (c *Coordinator) Close(ctx context.Context) error {
	c.closeOne.Do(func() {
		close(c.stopping)
		c.loopWG.Wait()
		done := make(chan struct{})
		go func() { c.runWG.Wait(); close(done) }()
		t := time.NewTimer(c.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			c.hardStop()
			<-done
		case <-ctx.Done():
			c.hardStop()
			<-done
		}
		c.hardStop()
	})
	return nil
}

func (c *Coordinator) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// NewGID returns a random, roughly time-ordered transaction id.
func NewGID() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}

// Submit validates and durably records a saga, then starts driving it. It
// returns the transaction and whether it was created now. Resubmitting a gid
// with identical content returns the existing transaction (created=false);
// different content fails with dtx.ErrConflict. Invalid specs fail with an
// error wrapping dtx.ErrInvalid.
func (c *Coordinator) Submit(ctx context.Context, spec saga.Spec) (*dtx.TxDetail, bool, error) {
	return c.SubmitPattern(ctx, dtx.PatternSaga, spec)
}

// SubmitPattern is Submit for a pattern the saga engine drives (saga, or
// tcc and xa as built by package tcc); the pattern is recorded for display.
//
// A spec without TraceParent takes the trace context of ctx (an
// OpenTelemetry span, or a remote span context a server extracted): the
// transaction is recorded with it and its spans and branch calls join that
// trace, after a recovery too.
func (c *Coordinator) SubmitPattern(ctx context.Context, pattern dtx.Pattern, spec saga.Spec) (*dtx.TxDetail, bool, error) {
	if !pattern.SagaEngine() {
		return nil, false, fmt.Errorf("%w: pattern %q is not driven by the saga engine", dtx.ErrInvalid, pattern)
	}
	if c.isStopping() {
		return nil, false, dtx.ErrClosed
	}
	if spec.GID == "" {
		spec.GID = NewGID()
	}
	if spec.TraceParent == "" {
		spec.TraceParent = traceParentOf(ctx)
	}
	if err := c.normalize(&spec); err != nil {
		return nil, false, err
	}
	if err := c.checkURLs(&spec); err != nil {
		return nil, false, err
	}
	raw, err := json.Marshal(&spec)
	if err != nil {
		return nil, false, fmt.Errorf("encode spec: %w", err)
	}
	// Stores keep millisecond precision; so does the state we return.
	now := time.UnixMilli(c.cfg.Now().UnixMilli()).UTC()
	tx := &dtx.Tx{
		GID: spec.GID, Pattern: pattern, Status: dtx.StatusRunning,
		Spec: raw, Digest: submitDigest(pattern, &spec, raw), CreatedAt: now, UpdatedAt: now,
		Deadline:   now.Add(spec.Timeout.Std()),
		LeaseOwner: c.cfg.Owner, LeaseUntil: now.Add(c.cfg.LeaseTTL),
	}
	branches := saga.InitialBranches(spec.GID, &spec)
	switch err := c.store.Create(ctx, tx, branches); {
	case errors.Is(err, dtx.ErrExists):
		old, oldBr, err := c.store.Get(ctx, spec.GID)
		if err != nil {
			return nil, false, err
		}
		if old.Digest != tx.Digest && old.Digest != legacyDigest(pattern, &spec) {
			return nil, false, fmt.Errorf("%w: %s", dtx.ErrConflict, spec.GID)
		}
		if !old.Status.Terminal() && old.LeaseOwner == c.cfg.Owner && !c.isForcing(old.GID) {
			// Ours but possibly not driven (e.g. a create whose answer was
			// lost): resume is a no-op if a driver exists.
			if err := c.resume(ctx, old.GID); err != nil {
				return nil, false, err
			}
		}
		return &dtx.TxDetail{Tx: *old, Branches: oldBr}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("record saga %s: %w", spec.GID, err)
	}
	c.cfg.Observer.TxStarted(pattern)
	r := c.newRun(tx, &spec, branches, false)
	if !c.startRun(r) {
		// Shutting down between Create and now: hand it to whoever recovers.
		c.store.Release(context.WithoutCancel(ctx), c.cfg.Owner, tx.GID)
	}
	return &dtx.TxDetail{Tx: *tx, Branches: branches}, true, nil
}

// checkURLs refuses (dtx.ErrInvalid) a spec with a step URL the transport
// cannot call, if the transport can tell (dtx.URLChecker): an unserved
// scheme, or a URL against its scheme's rule (a broker topic, say). The
// saga package checks only what holds for every transport.
func (c *Coordinator) checkURLs(spec *saga.Spec) error {
	ch, ok := c.transport.(dtx.URLChecker)
	if !ok {
		return nil
	}
	var errs []error
	for i := range spec.Steps {
		st := &spec.Steps[i]
		for _, u := range []struct{ field, url string }{{"action", st.Action}, {"compensate", st.Compensate}} {
			if u.url == "" {
				continue
			}
			if err := ch.CheckURL(u.url); err != nil {
				errs = append(errs, fmt.Errorf("%w: step %d (%s) %s: %v", dtx.ErrInvalid, i, st.Name, u.field, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Coordinator) startRun(r *run) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isStopping() {
		return false
	}
	if _, dup := c.active[r.gid]; dup {
		return true
	}
	c.active[r.gid] = r
	c.runWG.Add(1)
	c.workers.Go(r.loop)
	return true
}

// runDone is called by a driver when it stops, with the final state if the
// transaction finished.
func (c *Coordinator) runDone(gid string, final *dtx.TxDetail) {
	if final == nil {
		// Unfinished: make sure it is claimable (we may have re-claimed it
		// while this driver was stopping; Release is a no-op otherwise).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.store.Release(ctx, c.cfg.Owner, gid)
		cancel()
	}
	c.mu.Lock()
	delete(c.parked, gid)
	delete(c.active, gid)
	ws := c.waiters[gid]
	if final != nil {
		delete(c.waiters, gid)
	}
	c.mu.Unlock()
	for _, w := range ws {
		notify(w, final)
	}
	c.runWG.Done()
}

// notify hands a waiter the final state, or nil: "the driver here stopped
// without finishing" (it stays subscribed; another driver may finish it).
// It never blocks: a waiter's channel holds one message, and a final state
// replaces a pending nil.
func notify(w chan *dtx.TxDetail, final *dtx.TxDetail) {
	for {
		select {
		case w <- final:
			return
		default:
		}
		if final == nil {
			return // a notice is pending already
		}
		select {
		case <-w: // a pending "stopped" notice, superseded
		default:
		}
	}
}

// WaitPollInterval is how often Wait reads the store for a transaction no
// driver of this coordinator runs (one driven by another coordinator
// process sharing the store, or not claimed yet).
const WaitPollInterval = time.Second

// driving reports whether a driver of this coordinator runs gid.
func (c *Coordinator) driving(gid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.active[gid]
	return ok
}

// Wait blocks until the transaction is finished (or ctx ends) and returns its
// final state. When ctx ends or the coordinator closes first, it returns
// the latest state with ctx.Err() or dtx.ErrClosed.
//
// A transaction driven by this coordinator wakes its waiters when it
// finishes: they read nothing from the store meanwhile. Only while no
// driver here runs it (another coordinator process sharing the store
// drives it, as in a highly available setup, or nobody has claimed it
// yet) does Wait fall back to reading the store, every WaitPollInterval
// on the coordinator's clock (Config.After).
func (c *Coordinator) Wait(ctx context.Context, gid string) (*dtx.TxDetail, error) {
	ch := make(chan *dtx.TxDetail, 1)
	c.mu.Lock()
	// A transaction driven here reports its end on ch (runDone removes it
	// from active and notifies under the same lock), so no store read is
	// needed; otherwise read the store first and then poll it.
	_, local := c.active[gid]
	c.waiters[gid] = append(c.waiters[gid], ch)
	c.mu.Unlock()
	defer c.unsubscribe(gid, ch)
	var last *dtx.TxDetail
	for {
		var poll <-chan time.Time
		if !local {
			tx, br, err := c.store.Get(ctx, gid)
			if err != nil {
				return nil, err
			}
			last = &dtx.TxDetail{Tx: *tx, Branches: br}
			if tx.Status.Terminal() {
				return last, nil
			}
			poll = c.cfg.After(WaitPollInterval)
		}
		select {
		case d := <-ch:
			if d != nil {
				return d, nil
			}
			// The driver here stopped without finishing (its lease was
			// lost, say): whoever takes the transaction over, read it.
			local = false
		case <-ctx.Done():
			return c.latest(last, gid), ctx.Err()
		case <-c.stopping:
			return c.latest(last, gid), dtx.ErrClosed
		case <-poll:
			// Claimed here meanwhile: its driver will say when it ends
			// (ch is subscribed already, so that end is not missed).
			local = c.driving(gid)
		}
	}
}

// latest returns last, or reads the transaction when nothing was read yet.
func (c *Coordinator) latest(last *dtx.TxDetail, gid string) *dtx.TxDetail {
	if last != nil {
		return last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tx, br, err := c.store.Get(ctx, gid)
	if err != nil {
		return nil
	}
	return &dtx.TxDetail{Tx: *tx, Branches: br}
}

func (c *Coordinator) unsubscribe(gid string, ch chan *dtx.TxDetail) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[gid]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.waiters, gid)
	} else {
		c.waiters[gid] = ws
	}
}

// Abort asks a running saga to compensate. It fails with dtx.ErrNotFound,
// dtx.ErrFinished, ErrPastPivot, or ErrNotDrivenHere when another
// coordinator holds the saga's lease (retry there, or after it expires).
func (c *Coordinator) Abort(ctx context.Context, gid, reason string) error {
	if reason == "" {
		reason = "aborted by operator"
	}
	tx, br, err := c.store.Get(ctx, gid)
	if err != nil {
		return err
	}
	if tx.Status.Terminal() {
		return dtx.ErrFinished
	}
	if tx.Status == dtx.StatusCompensating {
		return nil
	}
	var spec saga.Spec
	if err := json.Unmarshal(tx.Spec, &spec); err != nil {
		return fmt.Errorf("decode spec %s: %w", gid, err)
	}
	if saga.PastPivot(&spec, br) {
		return ErrPastPivot
	}
	c.mu.Lock()
	r := c.active[gid]
	c.mu.Unlock()
	if r == nil {
		return ErrNotDrivenHere
	}
	resp := make(chan error, 1)
	select {
	case r.abort <- abortReq{reason: reason, resp: resp}:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return dtx.ErrFinished
	}
	select {
	case err := <-resp:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RetryNow makes a transaction that waits on backoff call its pending
// operations at once instead of when their delay ends, and returns how many
// calls it released (0: nothing was waiting; calls in flight are not
// affected). It fails with dtx.ErrNotFound, dtx.ErrFinished, or
// ErrNotDrivenHere when this coordinator is not driving the transaction
// (another one holds its lease, or it waits for recovery to claim it).
func (c *Coordinator) RetryNow(ctx context.Context, gid string) (int, error) {
	tx, _, err := c.store.Get(ctx, gid)
	if err != nil {
		return 0, err
	}
	if tx.Status.Terminal() {
		return 0, dtx.ErrFinished
	}
	c.mu.Lock()
	r := c.active[gid]
	c.mu.Unlock()
	if r == nil {
		return 0, ErrNotDrivenHere
	}
	resp := make(chan int, 1)
	select {
	case r.retry <- resp:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-r.done:
		return 0, dtx.ErrFinished
	}
	return <-resp, nil
}

// Active returns how many transactions this coordinator is driving.
func (c *Coordinator) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.active)
}

func (c *Coordinator) recoveryLoop() {
	defer c.loopWG.Done()
	t := time.NewTicker(c.cfg.RecoverInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopping:
			return
		case <-t.C:
			if err := c.recoverOnce(c.hardCtx); err != nil && !c.isStopping() {
				c.log.Warn("recovery pass failed", slog.Any("err", err))
			}
		}
	}
}

// recoverOnce claims expired leases, up to the free slots and at most
// Config.RecoverBatch per pass, and resumes them: a backlog of thousands of
// transactions is resumed at a bounded rate, not at once.
func (c *Coordinator) recoverOnce(ctx context.Context) error {
	free := c.cfg.MaxActive - c.Active()
	if free <= 0 || c.isStopping() {
		return nil
	}
	limit := min(free, c.cfg.RecoverBatch)
	now := c.cfg.Now()
	gids, err := c.store.Claim(ctx, c.cfg.Owner, now, now.Add(c.cfg.LeaseTTL), limit)
	if err != nil {
		return err
	}
	for _, gid := range gids {
		if err := c.resume(ctx, gid); err != nil {
			c.log.Error("cannot resume transaction", slog.String("gid", gid), slog.Any("err", err))
			c.store.Release(ctx, c.cfg.Owner, gid)
		}
	}
	if len(gids) > 0 {
		c.cfg.Observer.Claimed(len(gids))
		c.log.Info("resumed transactions", slog.Int("count", len(gids)))
	}
	return nil
}

func (c *Coordinator) resume(ctx context.Context, gid string) error {
	c.mu.Lock()
	_, running := c.active[gid]
	c.mu.Unlock()
	if running {
		return nil
	}
	tx, br, err := c.store.Get(ctx, gid)
	if err != nil {
		return err
	}
	if tx.Status.Terminal() {
		return nil
	}
	if !tx.Pattern.SagaEngine() {
		return fmt.Errorf("pattern %q is not supported by this coordinator", tx.Pattern)
	}
	var spec saga.Spec
	if err := json.Unmarshal(tx.Spec, &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	if len(br) != len(spec.Steps) {
		return fmt.Errorf("store has %d branches for %d steps", len(br), len(spec.Steps))
	}
	if !c.startRun(c.newRun(tx, &spec, br, true)) {
		c.store.Release(ctx, c.cfg.Owner, gid) // shutting down: hand it over now
	}
	return nil
}

// leaseFresh reports whether our leases were renewed recently enough (within
// half a TTL) that progress may be kept in memory for a while: a driver that
// may have lost its lease writes before it calls anything more.
func (c *Coordinator) leaseFresh() bool {
	at := c.renewedAt.Load()
	return at != 0 && c.cfg.Now().Sub(time.Unix(0, at)) < c.cfg.LeaseTTL/2
}

func (c *Coordinator) renewLoop() {
	defer c.loopWG.Done()
	t := time.NewTicker(c.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stopping:
			return
		case <-t.C:
			now := c.cfg.Now()
			if _, err := c.store.Renew(c.hardCtx, c.cfg.Owner, now.Add(c.cfg.LeaseTTL)); err != nil {
				if !c.isStopping() {
					c.cfg.Observer.RenewFailed()
					c.log.Warn("lease renewal failed", slog.Any("err", err))
				}
				continue
			}
			c.renewedAt.Store(now.UnixNano())
		}
	}
}

// legacyDigest is the digest s had before steps carried a branch index
// (saga.Step.Branch, set by package tcc on confirms): a TCC transaction
// recorded by an older coordinator and resubmitted unchanged is the same
// submission, not a conflict. (It is still driven by its stored spec.)
func legacyDigest(p dtx.Pattern, s *saga.Spec) string {
	old := *s
	old.Steps = make([]saga.Step, len(s.Steps))
	for i, st := range s.Steps {
		st.Branch = nil
		old.Steps[i] = st
	}
	return digest(p, &old)
}

// submitDigest is digest(p, s) for a spec encoded as raw, without encoding
// it a second time when raw is what Digest would hash (no trace context).
func submitDigest(p dtx.Pattern, s *saga.Spec, raw []byte) string {
	if s.TraceParent != "" {
		return digest(p, s)
	}
	d := saga.DigestEncoded(raw)
	if p == dtx.PatternSaga {
		return d
	}
	return string(p) + ":" + d
}

// digest identifies a submission: the spec, and the pattern unless saga.
func digest(p dtx.Pattern, s *saga.Spec) string {
	if p == dtx.PatternSaga {
		return s.Digest()
	}
	return string(p) + ":" + s.Digest()
}
