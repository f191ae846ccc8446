package dtxtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Kind names a kind of scenario (see the package documentation).
type Kind string

// Scenario kinds.
const (
	Clean               Kind = "clean"
	Duplicate           Kind = "duplicate"
	ConcurrentDuplicate Kind = "concurrent-duplicate"
	LostRequest         Kind = "lost-request"
	LostResponse        Kind = "lost-response"
	LateOriginal        Kind = "late-original"
	NullCompensation    Kind = "null-compensation"
	CrashBeforeWrite    Kind = "crash-before-write"
	CrashAfterWrite     Kind = "crash-after-write"
	Storm               Kind = "storm"
)

// Kinds lists every scenario kind, in the order Run plays them.
var Kinds = []Kind{Clean, Duplicate, ConcurrentDuplicate, LostRequest, LostResponse,
	LateOriginal, NullCompensation, CrashBeforeWrite, CrashAfterWrite, Storm}

// Defaults for Config.
const (
	DefaultStorm           = 10
	DefaultScenarioTimeout = 30 * time.Second
	// NullCompensationTimeout is the transaction timeout a null-compensation
	// scenario sets, so that the withheld action makes it give up quickly.
	NullCompensationTimeout = 300 * time.Millisecond
)

// Config is what Run tests.
type Config struct {
	// Services are the participants under test, by name. Each is served on
	// loopback (httptest); Instance.URL(name) is its base URL.
	Services map[string]http.Handler
	// Cases are the transactions to play the scenarios on: include one
	// that succeeds and one that fails (a refusal that makes the
	// coordinator compensate), so that compensations are exercised too.
	Cases []Case
	// Check is your invariant, called after each scenario once its
	// transaction has finished, and again after the calls the scenario held
	// back were delivered late (Result.AfterLate). Return an
	// error to report a violation. Nil: only the kit's own checks (the
	// transaction ends, with the clean run's outcome).
	Check func(ctx context.Context, r Result) error
	// Seed makes the storm reproducible (and names the gids).
	Seed uint64
	// Storm is how many storm transactions run per case (0: DefaultStorm;
	// negative: none).
	Storm int
	// Only, if not empty, plays only these kinds (Clean always runs: it is
	// the reference).
	Only []Kind
	// ScenarioTimeout bounds each scenario (0: DefaultScenarioTimeout).
	ScenarioTimeout time.Duration
	// Transport calls the participants (default: the HTTP transport of
	// package transport/httptransport, without signatures). Pass a signing
	// transport if your handlers require signed calls.
	Transport dtx.Transport
	// Logger receives the coordinators' logs (default: discarded).
	Logger *slog.Logger
}

// Validate reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("dtxtest: no Services to test"))
	}
	for name, h := range c.Services {
		if name == "" || h == nil {
			errs = append(errs, fmt.Errorf("dtxtest: service %q: a name and a handler are required", name))
		}
	}
	if len(c.Cases) == 0 {
		errs = append(errs, errors.New("dtxtest: no Cases"))
	}
	seen := map[string]bool{}
	for i, cs := range c.Cases {
		if cs.Name == "" || cs.Build == nil {
			errs = append(errs, fmt.Errorf("dtxtest: case %d: Name and Build are required", i+1))
		}
		if seen[cs.Name] {
			errs = append(errs, fmt.Errorf("dtxtest: case %q given twice", cs.Name))
		}
		seen[cs.Name] = true
	}
	for _, k := range c.Only {
		if !slices.Contains(Kinds, k) {
			errs = append(errs, fmt.Errorf("dtxtest: unknown kind %q in Only", k))
		}
	}
	if c.ScenarioTimeout < 0 {
		errs = append(errs, errors.New("dtxtest: negative ScenarioTimeout"))
	}
	return errors.Join(errs...)
}

// Case is one transaction shape to test.
type Case struct {
	// Name identifies the case in reports.
	Name string
	// Build returns the transaction of one instance.
	Build func(in Instance) (Transaction, error)
}

// Instance is one transaction the kit runs.
type Instance struct {
	// GID is the transaction's gid: unique in the run, built from the
	// seed, the case and N.
	GID string
	// N numbers the instances of a run from 1: key your test data on it.
	N int64
	// Case is the case's name.
	Case string
	urls map[string]string
}

// URL is the base URL (http://127.0.0.1:port) of the named service. It
// panics on a name that is not in Config.Services: a typo in a test.
func (in Instance) URL(service string) string {
	u, ok := in.urls[service]
	if !ok {
		panic(fmt.Sprintf("dtxtest: no service %q (have %v)", service, mapsKeys(in.urls)))
	}
	return u
}

// Transaction is what a Case builds: a saga or a TCC transaction.
type Transaction struct {
	Pattern dtx.Pattern
	Spec    saga.Spec
}

// Saga wraps a saga spec (as saga.Builder.Build returns it).
func Saga(spec saga.Spec, err error) (Transaction, error) {
	if err != nil {
		return Transaction{}, err
	}
	return Transaction{Pattern: dtx.PatternSaga, Spec: spec}, nil
}

// TCC wraps a TCC spec (as tcc.Builder.Build returns it).
func TCC(spec tcc.Spec, err error) (Transaction, error) {
	if err != nil {
		return Transaction{}, err
	}
	sg, err := spec.Saga()
	if err != nil {
		return Transaction{}, err
	}
	return Transaction{Pattern: dtx.PatternTCC, Spec: sg}, nil
}

// Result is one finished scenario, as Config.Check sees it.
type Result struct {
	Instance
	// Kind and Scenario say what was done ("lost-response of step 2
	// compensate", "crash after write 3").
	Kind     Kind
	Scenario string
	// Status is how the transaction ended; Expected is how its case's clean
	// run ended.
	Status   dtx.Status
	Expected dtx.Status
	// AfterLate is set on the second check of a scenario that held calls
	// back: Check runs once when the transaction has ended and again after
	// the late calls were delivered (a hanging action, say).
	AfterLate bool
}

// Violation is one failed check.
type Violation struct {
	Case, Scenario, GID string
	Err                 error
}

func (v Violation) String() string {
	return fmt.Sprintf("case %q, %s (gid %s): %v", v.Case, v.Scenario, v.GID, v.Err)
}

// Report sums up a run.
type Report struct {
	// Scenarios counts the scenarios played, by kind.
	Scenarios map[Kind]int
	// Crashes counts the coordinator crashes injected; Late counts the
	// calls delivered after their transaction ended.
	Crashes, Late int
	Violations    []Violation
	// CleanWrites is, by case name, the number of durable writes its
	// clean run made: each write gives one crash-before and one
	// crash-after scenario. For a transaction whose operations run one at
	// a time it is the same in every run; where operations run in
	// parallel, which of them a write records can depend on which answered
	// first.
	CleanWrites map[string]int
}

// Total is the number of scenarios played.
func (r Report) Total() int {
	n := 0
	for _, c := range r.Scenarios {
		n += c
	}
	return n
}

// Run plays every scenario on every case and reports each violation with
// t.Errorf (setup failures with t.Fatalf). It returns the report, so that a
// test can also inspect it.
func Run(t testing.TB, cfg Config) Report {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%v", err)
	}
	if cfg.Storm == 0 {
		cfg.Storm = DefaultStorm
	}
	if cfg.ScenarioTimeout == 0 {
		cfg.ScenarioTimeout = DefaultScenarioTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = httptransport.New(nil)
	}
	urls := map[string]string{}
	for name, h := range cfg.Services {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls[name] = srv.URL
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "coordinator.db"), sqlstore.Config{})
	if err != nil {
		t.Fatalf("dtxtest: coordinator store: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	k := &kit{t: t, cfg: cfg, store: store, urls: urls,
		report: Report{Scenarios: map[Kind]int{}, CleanWrites: map[string]int{}}}
	for _, cs := range cfg.Cases {
		k.runCase(cs)
	}
	for _, v := range k.report.Violations {
		t.Errorf("dtxtest: %s", v)
	}
	t.Logf("dtxtest: %d scenarios (%s), %d coordinator crashes, %d late deliveries, %d violations",
		k.report.Total(), k.summary(), k.report.Crashes, k.report.Late, len(k.report.Violations))
	return k.report
}

type kit struct {
	t      testing.TB
	cfg    Config
	store  dtx.Store
	urls   map[string]string
	n      int64
	report Report
}

func (k *kit) summary() string {
	var parts []string
	for _, kind := range Kinds {
		if c := k.report.Scenarios[kind]; c > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kind, c))
		}
	}
	return strings.Join(parts, ", ")
}

func (k *kit) plays(kind Kind) bool {
	return kind == Clean || len(k.cfg.Only) == 0 || slices.Contains(k.cfg.Only, kind)
}

func (k *kit) instance(cs Case) Instance {
	k.n++
	return Instance{
		GID:  fmt.Sprintf("dtxtest-%d-%s-%d", k.cfg.Seed, gidPart(cs.Name), k.n),
		N:    k.n,
		Case: cs.Name,
		urls: k.urls,
	}
}

// runCase plays the clean run of cs, then every scenario derived from
// what the clean run did.
func (k *kit) runCase(cs Case) {
	clean := k.play(cs, scenario{kind: Clean, name: "clean run"})
	if clean == nil {
		return // reported: nothing to derive the other scenarios from
	}
	k.report.CleanWrites[cs.Name] = clean.writes
	for _, sc := range derive(clean, k.cfg.Storm) {
		if k.plays(sc.kind) {
			k.play(cs, sc)
		}
	}
}

// cleanRun is what the clean run of a case did: the reference for the
// scenarios derived from it.
type cleanRun struct {
	status dtx.Status
	// ops are the operations called, in the order of their first call.
	ops []opKey
	// compensatable lists the branches whose action has a compensation.
	compensatable []int
	// writes counts the durable writes of the transaction's state.
	writes int
}

// play runs one scenario and returns what the transaction did (for the
// clean run), or nil when it could not be played.
func (k *kit) play(cs Case, sc scenario) *cleanRun {
	in := k.instance(cs)
	k.report.Scenarios[sc.kind]++
	fail := func(err error) {
		k.report.Violations = append(k.report.Violations, Violation{Case: cs.Name, Scenario: sc.name, GID: in.GID, Err: err})
	}
	tx, err := cs.Build(in)
	if err != nil {
		k.t.Fatalf("dtxtest: case %q: Build: %v", cs.Name, err)
	}
	tx.Spec.GID = in.GID
	if sc.kind == NullCompensation {
		tx.Spec.Timeout = dtx.Duration(NullCompensationTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.ScenarioTimeout)
	defer cancel()

	faults := newFaults(k.cfg.Transport, in.GID, sc, k.cfg.Seed)
	d, crashed, err := k.drive(ctx, in.GID, tx, faults, sc)
	if crashed {
		k.report.Crashes++
	}
	if err != nil {
		fail(err)
		return nil
	}
	res := Result{Instance: in, Kind: sc.kind, Scenario: sc.name, Status: d.Status, Expected: sc.expected}
	if sc.kind == Clean {
		res.Expected = d.Status
	} else if sc.kind != NullCompensation && d.Status != sc.expected {
		fail(fmt.Errorf("the transaction %s, but its clean run %s: a delivery fault or a crash changed the outcome", d.Status, sc.expected))
	}
	check := func(res Result) {
		if k.cfg.Check == nil {
			return
		}
		if err := k.cfg.Check(ctx, res); err != nil {
			when := "when the transaction ended"
			if res.AfterLate {
				when = "after the late deliveries"
			}
			fail(fmt.Errorf("check %s: %w", when, err))
		}
	}
	check(res)
	if late := faults.deliverLate(ctx); late > 0 {
		k.report.Late += late
		res.AfterLate = true
		check(res)
	}
	if sc.kind != Clean {
		return nil
	}
	run := &cleanRun{status: d.Status, ops: faults.firstCalls(), writes: int(faults.writes.Load())}
	for i, st := range tx.Spec.Steps {
		if st.Action != "" && st.Compensate != "" {
			run.compensatable = append(run.compensatable, i)
		}
	}
	return run
}

// drive submits tx on a fresh coordinator and waits for its end. A crash
// scenario kills that coordinator at its crash point, starts another on
// the same store and resubmits if the first never stored the
// transaction, as a client retrying its submission would.
func (k *kit) drive(ctx context.Context, gid string, tx Transaction, f *faults, sc scenario) (*dtx.TxDetail, bool, error) {
	first, err := k.start(ctx, f, sc)
	if err != nil {
		return nil, false, err
	}
	type waited struct {
		d   *dtx.TxDetail
		err error
	}
	done := make(chan waited, 1)
	go func() {
		if _, _, err := first.c.SubmitPattern(ctx, tx.Pattern, tx.Spec); err != nil {
			done <- waited{err: fmt.Errorf("submit: %w", err)}
			return
		}
		d, err := first.c.Wait(ctx, gid)
		done <- waited{d, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-first.store.crashed:
	}
	if !first.store.dead.Load() {
		first.close()
		if w.err != nil {
			return nil, false, w.err
		}
		return w.d, false, nil
	}
	// The first coordinator is dead: whatever it was doing stops (its store
	// and its calls fail from now on). Its leases are released, as their
	// expiry would (the kit's leases outlive any scenario, see start), and
	// a second one recovers.
	first.close()
	if err := k.store.Release(ctx, first.c.Owner(), gid); err != nil {
		return nil, true, fmt.Errorf("expire the crashed coordinator's lease: %w", err)
	}
	second, err := k.start(ctx, f, scenario{kind: Clean})
	if err != nil {
		return nil, true, err
	}
	defer second.close()
	if _, _, err := k.store.Get(ctx, gid); errors.Is(err, dtx.ErrNotFound) {
		if _, _, err := second.c.SubmitPattern(ctx, tx.Pattern, tx.Spec); err != nil {
			return nil, true, fmt.Errorf("resubmit after the crash: %w", err)
		}
	} else if err != nil {
		return nil, true, err
	}
	d, err := second.c.Wait(ctx, gid)
	if err != nil {
		return nil, true, fmt.Errorf("after the coordinator crashed at %s, the transaction did not finish: %w", sc.name, err)
	}
	return d, true, nil
}

type instance struct {
	c     *coordinator.Coordinator
	store *crashStore
}

func (i *instance) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	i.c.Close(ctx)
}

// start opens a coordinator on the kit's store, through a crash wrapper
// armed for crash scenarios, calling participants through f.
func (k *kit) start(ctx context.Context, f *faults, sc scenario) (*instance, error) {
	cs := &crashStore{Store: k.store, gid: f.gid, crashed: make(chan struct{})}
	switch sc.kind {
	case CrashBeforeWrite:
		cs.crashAt = sc.write
	case CrashAfterWrite:
		cs.crashAt, cs.crashAfter = sc.write, true
	}
	cs.onWrite = func() { f.writes.Add(1) }
	tr := &deadTransport{next: f, store: cs}
	c, err := coordinator.New(cs, tr, coordinator.Config{
		// A lease that never goes stale during a scenario: a coordinator
		// writes an action's success lazily only while its lease is fresh,
		// so a short lease renewed late on a busy machine would change
		// which writes a transaction makes, and the crash scenarios that
		// follow them, from one run to the next. A crashed coordinator's
		// lease is released instead of waited out (drive).
		LeaseTTL:        time.Hour,
		RecoverInterval: 10 * time.Millisecond,
		RetryBase:       time.Millisecond,
		RetryMax:        20 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second,
		Logger:          k.cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("coordinator start: %w", err)
	}
	return &instance{c: c, store: cs}, nil
}

func gidPart(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

func mapsKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
