package tcc_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// env is a coordinator on SQLite and one fake participant host that records
// "path op" for every call and answers what behave says.
type env struct {
	c      *coordinator.Coordinator
	url    string
	mu     sync.Mutex
	calls  []string
	behave func(path string, n int) int
	n      map[string]int
}

func newEnv(t *testing.T, behave func(path string, n int) int) *env {
	e := &env{behave: behave, n: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		e.mu.Lock()
		e.n[r.URL.Path]++
		n := e.n[r.URL.Path]
		e.calls = append(e.calls, r.URL.Path+" "+r.Header.Get(dtx.HeaderOp))
		e.mu.Unlock()
		code := http.StatusOK
		if e.behave != nil {
			code = e.behave(r.URL.Path, n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e.c, err = coordinator.New(st, httptransport.New(nil), coordinator.Config{RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, e.c.Start(context.Background()))
	t.Cleanup(func() { e.c.Close(context.Background()) })
	return e
}

func (e *env) log() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func (e *env) spec(gid string) tcc.Spec {
	return tcc.Spec{GID: gid, Participants: []tcc.Participant{
		{Name: "order", Cancel: e.url + "/order/cancel", Confirm: e.url + "/order/complete"},
		{Name: "stock", Try: e.url + "/stock/reserve", Confirm: e.url + "/stock/confirm", Cancel: e.url + "/stock/cancel"},
		{Name: "money", Try: e.url + "/money/reserve", Confirm: e.url + "/money/confirm", Cancel: e.url + "/money/cancel"},
	}}
}

func (e *env) run(t *testing.T, s tcc.Spec) *dtx.TxDetail {
	t.Helper()
	sg, err := s.Saga()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, created, err := e.c.SubmitPattern(ctx, dtx.PatternTCC, sg)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, dtx.PatternTCC, d.Pattern)
	final, err := e.c.Wait(ctx, d.GID)
	require.NoError(t, err)
	return final
}

func TestTCC_AllTriesSucceedThenConfirm(t *testing.T) {
	e := newEnv(t, nil)
	d := e.run(t, e.spec("tcc-ok"))
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	log := e.log()
	require.ElementsMatch(t, []string{
		"/stock/reserve try", "/money/reserve try",
		"/order/complete confirm", "/stock/confirm confirm", "/money/confirm confirm",
	}, log)
	for _, confirm := range log[2:] {
		require.Contains(t, confirm, "confirm", "no confirm before every try succeeded")
	}
	require.Equal(t, "/order/complete confirm", log[4], "the order is completed after its reservations are confirmed")
}

func TestTCC_TryFailureCancelsAndNeverConfirms(t *testing.T) {
	e := newEnv(t, func(path string, n int) int {
		if path == "/money/reserve" {
			return http.StatusConflict // insufficient balance
		}
		return http.StatusOK
	})
	d := e.run(t, e.spec("tcc-no"))
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "money.try")
	log := e.log()
	require.Contains(t, log, "/stock/cancel cancel")
	require.Contains(t, log, "/money/cancel cancel", "a failed try is cancelled too (a no-op for the participant)")
	require.Contains(t, log, "/order/cancel cancel", "the cancel-only participant is cancelled")
	for _, c := range log {
		require.NotContains(t, c, "confirm", "nothing is confirmed after a cancel")
	}
}

// The decision shows at once (seed rule F10): a participant whose cancel
// keeps failing does not hold back the cancel-only participant (the order).
// Here the stock cancel fails for as long as the order has not been
// cancelled; if the order's cancel waited for it, the transaction would
// never finish.
func TestTCC_CancelOnlyParticipantDoesNotWaitForFailingCancels(t *testing.T) {
	var e *env
	e = newEnv(t, func(path string, n int) int {
		switch path {
		case "/money/reserve":
			return http.StatusConflict
		case "/stock/cancel":
			if !slices.Contains(e.log(), "/order/cancel cancel") {
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	})
	d := e.run(t, e.spec("tcc-cancel-first"))
	require.Equal(t, dtx.StatusFailed, d.Status)
	log := e.log()
	order := slices.Index(log, "/order/cancel cancel")
	require.GreaterOrEqual(t, order, 0)
	var stockCancels []int
	for i, c := range log {
		if c == "/stock/cancel cancel" {
			stockCancels = append(stockCancels, i)
		}
	}
	require.NotEmpty(t, stockCancels)
	require.Less(t, order, stockCancels[len(stockCancels)-1], "the order is cancelled before the stock cancel succeeds")
}

// SequentialConfirms confirms one participant after another, in
// participant order: the money confirm waits for the stock confirm, which
// fails twice first.
func TestTCC_SequentialConfirmsRunInOrder(t *testing.T) {
	e := newEnv(t, func(path string, n int) int {
		if path == "/stock/confirm" && n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := e.spec("tcc-seq-confirms")
	s.Sequential, s.SequentialConfirms = true, true
	d := e.run(t, s)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, []string{
		"/stock/reserve try", "/money/reserve try",
		"/stock/confirm confirm", "/stock/confirm confirm", "/stock/confirm confirm",
		"/money/confirm confirm", "/order/complete confirm",
	}, e.log())
}

func TestTCC_ConfirmRetriedUntilItSucceeds(t *testing.T) {
	e := newEnv(t, func(path string, n int) int {
		if path == "/money/confirm" && n <= 4 {
			if n%2 == 0 {
				return http.StatusConflict // even a refusal is retried: confirms must succeed
			}
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := e.run(t, e.spec("tcc-confirm"))
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	e.mu.Lock()
	defer e.mu.Unlock()
	require.Equal(t, 5, e.n["/money/confirm"])
	require.Zero(t, e.n["/money/cancel"]+e.n["/stock/cancel"], "past the pivot nothing is cancelled")
}

func TestTCC_Validation(t *testing.T) {
	_, err := (&tcc.Spec{}).Saga()
	require.ErrorIs(t, err, dtx.ErrInvalid)
	_, err = (&tcc.Spec{Participants: []tcc.Participant{{Try: "http://x/try"}}}).Saga()
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, "a try needs a cancel")
}

// TestTCC_Limits: participant count and names are bounded, and the
// longest allowed name still makes a valid saga (its .confirm step name
// fits saga.MaxNameLength).
func TestTCC_Limits(t *testing.T) {
	p := func(name string) tcc.Participant {
		return tcc.Participant{Name: name, Try: "http://x/try", Confirm: "http://x/confirm", Cancel: "http://x/cancel"}
	}
	many := make([]tcc.Participant, tcc.MaxParticipants+1)
	for i := range many {
		many[i] = p("")
	}
	for _, tt := range []struct {
		name string
		spec tcc.Spec
		want string
	}{
		{"TooManyParticipants", tcc.Spec{Participants: many}, fmt.Sprintf("participants: %d; the limit is %d", tcc.MaxParticipants+1, tcc.MaxParticipants)},
		{"NameTooLong", tcc.Spec{Participants: []tcc.Participant{p(strings.Repeat("n", tcc.MaxNameLength+1))}}, fmt.Sprintf("participants[0].name is %d bytes long; the limit is %d", tcc.MaxNameLength+1, tcc.MaxNameLength)},
		{"NameWithControlChar", tcc.Spec{Participants: []tcc.Participant{p("ok"), p("a\rb")}}, `participants[1].name "a\rb" contains a control character`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.spec.Saga()
			require.ErrorIs(t, err, dtx.ErrInvalid)
			require.ErrorContains(t, err, tt.want)
		})
	}
	full := make([]tcc.Participant, tcc.MaxParticipants)
	for i := range full {
		full[i] = p(fmt.Sprintf("%0*d", tcc.MaxNameLength, i))
	}
	sg, err := (&tcc.Spec{GID: "tcc-max", Participants: full}).Saga()
	require.NoError(t, err)
	require.NoError(t, sg.Normalize())
	require.Len(t, sg.Steps, 2*tcc.MaxParticipants)
}

// TestTCC_SequentialTriesAndSharedBranch checks that Sequential tries run
// one after another in participant order, and that each participant's try,
// confirm and cancel carry one branch index.
func TestTCC_SequentialTriesAndSharedBranch(t *testing.T) {
	var mu sync.Mutex
	branches := map[string]string{} // path -> Dtx-Branch
	inTry := 0
	overlap := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		branches[r.URL.Path] = r.Header.Get(dtx.HeaderBranch)
		try := r.Header.Get(dtx.HeaderOp) == string(dtx.OpTry)
		if try {
			inTry++
			overlap = overlap || inTry > 1
		}
		mu.Unlock()
		if try {
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			inTry--
			mu.Unlock()
		}
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	s := tcc.Spec{GID: "tcc-seq", Sequential: true, Participants: []tcc.Participant{
		{Name: "a", Try: srv.URL + "/a/try", Confirm: srv.URL + "/a/confirm", Cancel: srv.URL + "/a/cancel"},
		{Name: "b", Try: srv.URL + "/b/try", Confirm: srv.URL + "/b/confirm", Cancel: srv.URL + "/b/cancel"},
		{Name: "c", Try: srv.URL + "/c/try", Confirm: srv.URL + "/c/confirm", Cancel: srv.URL + "/c/cancel"},
	}}
	sg, err := s.Saga()
	require.NoError(t, err)
	require.Equal(t, []int{0}, sg.Steps[1].After)
	require.Equal(t, []int{1}, sg.Steps[2].After)
	d := e.run(t, s)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	mu.Lock()
	defer mu.Unlock()
	require.False(t, overlap, "sequential tries must not overlap")
	for _, p := range []string{"a", "b", "c"} {
		require.NotEmpty(t, branches["/"+p+"/try"])
		require.Equal(t, branches["/"+p+"/try"], branches["/"+p+"/confirm"], "participant %s: confirm on the try's branch", p)
	}
	require.NotEqual(t, branches["/a/try"], branches["/b/try"])
}
