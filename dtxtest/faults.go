package dtxtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
)

// opKey names one operation of one branch.
type opKey struct {
	Branch int
	Op     dtx.Op
}

func (o opKey) String() string { return fmt.Sprintf("step %d %s", o.Branch+1, o.Op) }

func isAction(op dtx.Op) bool { return op == dtx.OpAction || op == dtx.OpTry }

// The errors a faulty delivery answers the coordinator with: each is an
// unknown outcome, as a real network or crash would give.
var (
	errLostRequest  = errors.New("dtxtest: the request was lost before it reached the participant")
	errLostResponse = errors.New("dtxtest: the participant answered, the answer was lost")
	errTimedOut     = errors.New("dtxtest: the call timed out (it is still on its way)")
	errWithheld     = errors.New("dtxtest: the action is held back until the transaction has ended")
)

// faults is the transport between the coordinators of one scenario and the
// participants: it injects the scenario's faults into the calls of its
// transaction and records which operations were called.
type faults struct {
	next dtx.Transport
	gid  string
	sc   scenario
	seed uint64
	// writes counts the durable writes of the transaction's state (the
	// crash store's count, kept here so that the clean run reports it).
	writes atomic.Int64

	mu    sync.Mutex
	first []opKey
	seen  map[opKey]bool
	held  []dtx.Call
}

func newFaults(next dtx.Transport, gid string, sc scenario, seed uint64) *faults {
	return &faults{next: next, gid: gid, sc: sc, seed: seed, seen: map[opKey]bool{}}
}

// CheckURL lets the coordinator check step URLs as the wrapped transport
// would.
func (f *faults) CheckURL(raw string) error {
	if c, ok := f.next.(dtx.URLChecker); ok {
		return c.CheckURL(raw)
	}
	return nil
}

// Call delivers c as the scenario says.
func (f *faults) Call(ctx context.Context, c dtx.Call) dtx.Outcome {
	if c.GID != f.gid {
		return f.next.Call(ctx, c)
	}
	key := opKey{c.Branch, c.Op}
	f.record(key)
	switch f.sc.kind {
	case Duplicate:
		f.next.Call(ctx, c)
		return f.next.Call(ctx, c)
	case ConcurrentDuplicate:
		return f.twice(ctx, c)
	case LostRequest:
		if key == f.sc.target && c.Attempt == 1 {
			return dtx.Uncertain(errLostRequest)
		}
	case LostResponse:
		if key == f.sc.target && c.Attempt == 1 {
			f.next.Call(ctx, c)
			return dtx.Uncertain(errLostResponse)
		}
	case LateOriginal:
		if key == f.sc.target && c.Attempt == 1 {
			f.hold(c)
			return dtx.Uncertain(errTimedOut)
		}
	case NullCompensation:
		if c.Branch == f.sc.target.Branch && isAction(c.Op) {
			if c.Attempt == 1 {
				f.hold(c)
			}
			return dtx.Uncertain(errWithheld)
		}
	case Storm:
		return f.storm(ctx, c)
	}
	return f.next.Call(ctx, c)
}

// twice delivers c twice at the same time and answers with one of the two.
func (f *faults) twice(ctx context.Context, c dtx.Call) dtx.Outcome {
	var wg sync.WaitGroup
	var out [2]dtx.Outcome
	for i := range out {
		wg.Go(func() { out[i] = f.next.Call(ctx, c) })
	}
	wg.Wait()
	return out[0]
}

// storm picks a fault for each of the first three attempts of every
// operation from a hash of the seed and the call, so that a seed replays
// the same faults whatever order the calls come in.
func (f *faults) storm(ctx context.Context, c dtx.Call) dtx.Outcome {
	if c.Attempt > 3 {
		return f.next.Call(ctx, c)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d/%s/%d", f.seed, c.GID, c.Branch, c.Op, c.Attempt)
	switch r := h.Sum64() % 100; {
	case r < 12:
		return dtx.Uncertain(errLostRequest)
	case r < 24:
		f.next.Call(ctx, c)
		return dtx.Uncertain(errLostResponse)
	case r < 36:
		f.next.Call(ctx, c)
		return f.next.Call(ctx, c)
	case r < 42:
		return f.twice(ctx, c)
	case r < 48:
		f.hold(c)
		return dtx.Uncertain(errTimedOut)
	}
	return f.next.Call(ctx, c)
}

func (f *faults) record(key opKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.seen[key] {
		f.seen[key] = true
		f.first = append(f.first, key)
	}
}

func (f *faults) hold(c dtx.Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = append(f.held, c)
}

// firstCalls returns the operations called, in the order of their first
// call.
func (f *faults) firstCalls() []opKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]opKey(nil), f.first...)
}

// deliverLate delivers the calls held back, now that the transaction has
// ended, and returns how many it delivered. Their answers go nowhere: the
// coordinator gave up on them long ago.
func (f *faults) deliverLate(ctx context.Context) int {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, c := range held {
		c.Timeout = 10 * time.Second
		f.next.Call(ctx, c)
	}
	return len(held)
}

// deadTransport stops a crashed coordinator's calls: from the crash on,
// nothing it still had in flight reaches a participant.
type deadTransport struct {
	next  *faults
	store *crashStore
}

func (d *deadTransport) CheckURL(raw string) error { return d.next.CheckURL(raw) }

func (d *deadTransport) Call(ctx context.Context, c dtx.Call) dtx.Outcome {
	if d.store.dead.Load() {
		return dtx.Uncertain(errCrashed)
	}
	return d.next.Call(ctx, c)
}

// errCrashed is what a crashed coordinator's store and calls answer.
var errCrashed = fmt.Errorf("dtxtest: the coordinator crashed: %w", dtx.ErrClosed)

// crashStore is the coordinator's store as one coordinator process sees
// it: it counts the durable writes of one transaction's state and, when
// armed, kills the process at one of them, before or after the write.
// From then on every call fails, as for a process that is gone.
type crashStore struct {
	dtx.Store
	gid        string
	crashAt    int
	crashAfter bool
	onWrite    func()

	count   atomic.Int64
	dead    atomic.Bool
	crashed chan struct{}
	once    sync.Once
}

func (s *crashStore) die() {
	s.once.Do(func() {
		s.dead.Store(true)
		close(s.crashed)
	})
}

// write runs one write of the transaction's state under the crash plan.
func (s *crashStore) write(gid string, do func() error) error {
	if s.dead.Load() {
		return errCrashed
	}
	if gid != s.gid {
		return do()
	}
	n := int(s.count.Add(1))
	if n != s.crashAt {
		err := do()
		if err == nil && s.onWrite != nil {
			s.onWrite()
		}
		return err
	}
	if s.crashAfter {
		if err := do(); err != nil {
			return err
		}
	}
	s.die()
	return errCrashed
}

func (s *crashStore) Create(ctx context.Context, tx *dtx.Tx, br []dtx.Branch) error {
	return s.write(tx.GID, func() error { return s.Store.Create(ctx, tx, br) })
}

func (s *crashStore) Apply(ctx context.Context, u dtx.Update) error {
	return s.write(u.GID, func() error { return s.Store.Apply(ctx, u) })
}

func (s *crashStore) Get(ctx context.Context, gid string) (*dtx.Tx, []dtx.Branch, error) {
	if s.dead.Load() {
		return nil, nil, errCrashed
	}
	return s.Store.Get(ctx, gid)
}

func (s *crashStore) Claim(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error) {
	if s.dead.Load() {
		return nil, errCrashed
	}
	return s.Store.Claim(ctx, owner, now, until, limit)
}

func (s *crashStore) ClaimOne(ctx context.Context, owner, gid string, now, until time.Time) (bool, error) {
	if s.dead.Load() {
		return false, errCrashed
	}
	return s.Store.ClaimOne(ctx, owner, gid, now, until)
}

func (s *crashStore) Renew(ctx context.Context, owner string, until time.Time) (int, error) {
	if s.dead.Load() {
		return 0, errCrashed
	}
	return s.Store.Renew(ctx, owner, until)
}

func (s *crashStore) Release(ctx context.Context, owner, gid string) error {
	if s.dead.Load() {
		return errCrashed
	}
	return s.Store.Release(ctx, owner, gid)
}

// Close does not close the shared store: the next coordinator uses it.
func (s *crashStore) Close() error { return nil }
