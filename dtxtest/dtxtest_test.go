package dtxtest_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/dtxtest"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/sqlitedb"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

const initialBalance = 1000

// wallet is a participant under test: one account per transaction, debited
// by a saga step and credited back by its compensation.
type wallet struct {
	db *sql.DB
	// idempotentUndo: the compensation runs behind the barrier (correct).
	// Without it the compensation credits the account on every call: the
	// planted bug.
	idempotentUndo bool
}

type debit struct {
	Account int64 `json:"account"`
	Amount  int64 `json:"amount"`
}

func newWallet(t *testing.T, idempotentUndo bool) *wallet {
	t.Helper()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.ExecContext(ctx, `CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)`)
	require.NoError(t, err)
	require.NoError(t, participant.Barrier{}.Migrate(ctx, db))
	return &wallet{db: db, idempotentUndo: idempotentUndo}
}

func (w *wallet) open(ctx context.Context, account int64) error {
	_, err := w.db.ExecContext(ctx, `INSERT INTO accounts (id, balance) VALUES (?, ?)`, account, initialBalance)
	return err
}

func (w *wallet) handler() http.Handler {
	var b participant.Barrier
	take := func(ctx context.Context, tx *sql.Tx, d debit) (struct{}, error) {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?`, d.Amount, d.Account, d.Amount)
		if err != nil {
			return struct{}{}, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return struct{}{}, dtx.Permanentf("account %d: not enough money", d.Account)
		}
		return struct{}{}, nil
	}
	giveBack := func(ctx context.Context, tx *sql.Tx, d debit) (struct{}, error) {
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + ? WHERE id = ?`, d.Amount, d.Account)
		return struct{}{}, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /debit", participant.HandleJSON(w.db, b, take))
	if w.idempotentUndo {
		mux.Handle("POST /debit/undo", participant.HandleJSON(w.db, b, giveBack))
	} else {
		mux.Handle("POST /debit/undo", participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
			var d debit
			if err := json.Unmarshal(body, &d); err != nil {
				return nil, participant.BadRequest(err)
			}
			tx, err := w.db.BeginTx(ctx, nil)
			if err != nil {
				return nil, err
			}
			defer tx.Rollback()
			if _, err := giveBack(ctx, tx, d); err != nil {
				return nil, err
			}
			return nil, tx.Commit()
		}))
	}
	return mux
}

// check is the wallet's invariant for one transaction: its account was
// debited once if the transaction succeeded, not at all if it failed.
func (w *wallet) check(ctx context.Context, r dtxtest.Result) error {
	var balance int64
	if err := w.db.QueryRowContext(ctx, `SELECT balance FROM accounts WHERE id = ?`, r.N).Scan(&balance); err != nil {
		return err
	}
	want := int64(initialBalance)
	if r.Status == dtx.StatusSucceeded {
		want -= 100
	}
	if balance != want {
		return fmt.Errorf("account %d holds %d after the transaction %s, want %d", r.N, balance, r.Status, want)
	}
	return nil
}

// refuser is a participant that refuses every action: the step after the
// debit in the failing case, so that the debit is compensated.
func refuser() http.Handler {
	return participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		if br.Op == dtx.OpAction || br.Op == dtx.OpTry {
			return nil, dtx.Permanentf("refused")
		}
		return nil, nil
	})
}

func walletConfig(w *wallet, seed uint64) dtxtest.Config {
	build := func(refused bool) func(in dtxtest.Instance) (dtxtest.Transaction, error) {
		return func(in dtxtest.Instance) (dtxtest.Transaction, error) {
			if err := w.open(context.Background(), in.N); err != nil {
				return dtxtest.Transaction{}, err
			}
			b := saga.New(in.GID).Step("debit", in.URL("wallet")+"/debit", in.URL("wallet")+"/debit/undo",
				saga.Payload(debit{Account: in.N, Amount: 100}))
			if refused {
				b = b.Step("refuse", in.URL("refuser")+"/go", in.URL("refuser")+"/undo")
			}
			return dtxtest.Saga(b.Build())
		}
	}
	buildTCC := func(in dtxtest.Instance) (dtxtest.Transaction, error) {
		if err := w.open(context.Background(), in.N); err != nil {
			return dtxtest.Transaction{}, err
		}
		// A TCC whose second participant refuses its try: the debit (as a
		// try) is cancelled by its undo.
		return dtxtest.TCC(tcc.New(in.GID).
			Participant("wallet", in.URL("wallet")+"/debit", in.URL("refuser")+"/confirm", in.URL("wallet")+"/debit/undo",
				saga.Payload(debit{Account: in.N, Amount: 100})).
			Participant("refuser", in.URL("refuser")+"/try", in.URL("refuser")+"/confirm", in.URL("refuser")+"/cancel").
			Sequential().Build())
	}
	return dtxtest.Config{
		Services: map[string]http.Handler{"wallet": w.handler(), "refuser": refuser()},
		Cases: []dtxtest.Case{
			{Name: "debit", Build: build(false)},
			{Name: "debit then refused", Build: build(true)},
			{Name: "tcc refused", Build: buildTCC},
		},
		Check: w.check,
		Seed:  seed,
		Storm: 5,
	}
}

func TestRun_CorrectParticipantPasses(t *testing.T) {
	w := newWallet(t, true)
	rep := dtxtest.Run(t, walletConfig(w, 1))
	require.Empty(t, rep.Violations)
	for _, k := range dtxtest.Kinds {
		require.Positive(t, rep.Scenarios[k], "no %s scenario was played", k)
	}
	require.Positive(t, rep.Crashes)
	require.Positive(t, rep.Late, "no late delivery was made")
}

// recorder is a testing.TB that keeps the errors reported to it instead of
// failing the test: it shows what the kit reports on a buggy participant.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

func TestRun_FindsANonIdempotentCompensation(t *testing.T) {
	scenarios := func(seed uint64) ([]string, *recorder, dtxtest.Report) {
		w := newWallet(t, false)
		rec := &recorder{TB: t}
		rep := dtxtest.Run(rec, walletConfig(w, seed))
		require.NotEmpty(t, rep.Violations, "the planted bug was not found")
		var names []string
		for _, v := range rep.Violations {
			require.Contains(t, v.Err.Error(), ": account")
			// The TCC case cancels its two tries in parallel, so which
			// cancel's success a given write records depends on timing:
			// its crash scenarios are left out of the comparison below.
			if v.Case == "tcc refused" && strings.Contains(v.Scenario, "crash") {
				continue
			}
			names = append(names, v.Case+": "+v.Scenario)
		}
		require.Len(t, rec.errors, len(rep.Violations))
		return names, rec, rep
	}
	first, rec, firstRep := scenarios(7)
	t.Logf("found %d violations, e.g. %s", len(first), rec.errors[0])
	// The compensation is hit twice by duplicates, and runs although its
	// action never did (a null compensation): both must be caught.
	for _, want := range []string{"every call delivered twice", "every call delivered twice at once", "withheld until after its compensation"} {
		require.True(t, slices.ContainsFunc(first, func(s string) bool { return strings.Contains(s, want) }),
			"no violation in a scenario %q: %v", want, first)
	}
	// The debit-only case never compensates in its clean scenarios: the
	// bug shows only where a fault makes it compensate.
	require.False(t, slices.Contains(first, "debit: every call delivered twice"))
	// The same seed finds the same violations in the delivery scenarios.
	again, _, againRep := scenarios(7)
	require.Equal(t, deliveryScenarios(first), deliveryScenarios(again))
	// The crash scenarios follow the clean run's writes. For a saga whose
	// steps run one at a time those are the same in every run of a seed,
	// however busy the machine (a success is written lazily only while the
	// coordinator's lease is fresh, and the kit's leases never go stale in
	// a scenario): the same crash scenarios find the same violations.
	crashes := func(names []string, cs string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(s string) bool {
			return !strings.HasPrefix(s, cs+": coordinator crash")
		})
	}
	for _, cs := range []string{"debit", "debit then refused"} {
		require.Positive(t, firstRep.CleanWrites[cs], "case %q: no clean writes reported", cs)
		require.Equal(t, firstRep.CleanWrites[cs], againRep.CleanWrites[cs], "case %q: clean writes", cs)
		require.Equal(t, crashes(first, cs), crashes(again, cs), "case %q", cs)
	}
	// A crash before the write that records the compensation's success
	// makes the next coordinator run it again: the crash scenarios find
	// the planted bug.
	require.NotEmpty(t, crashes(first, "debit then refused"), "no crash scenario found the non-idempotent compensation: %v", first)
	// A call slower than its branch timeout on a busy machine is retried
	// as an attempt a storm faults afresh: storms are compared by presence.
	storm := func(s string) bool { return strings.Contains(s, "storm") }
	require.Equal(t, slices.ContainsFunc(first, storm), slices.ContainsFunc(again, storm), "violations in storm scenarios in one run only")
}

func TestConfig_Validate(t *testing.T) {
	var c dtxtest.Config
	err := c.Validate()
	require.ErrorContains(t, err, "no Services")
	require.ErrorContains(t, err, "no Cases")
	c = dtxtest.Config{Services: map[string]http.Handler{"a": http.NotFoundHandler()},
		Cases: []dtxtest.Case{{Name: "x"}}, Only: []dtxtest.Kind{"typo"}}
	err = c.Validate()
	require.ErrorContains(t, err, `case 1: Name and Build are required`)
	require.ErrorContains(t, err, `unknown kind "typo"`)
}

// deliveryScenarios are the violations of names outside the crash and storm
// scenarios.
func deliveryScenarios(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(s string) bool {
		return strings.Contains(s, "coordinator crash") || strings.Contains(s, "storm")
	})
}
