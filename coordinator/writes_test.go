package coordinator_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// countingStore counts the coordinator's writes: Creates and Applies.
type countingStore struct {
	dtx.Store
	creates, applies atomic.Int64
}

func (s *countingStore) Create(ctx context.Context, tx *dtx.Tx, br []dtx.Branch) error {
	s.creates.Add(1)
	return s.Store.Create(ctx, tx, br)
}

func (s *countingStore) Apply(ctx context.Context, u dtx.Update) error {
	s.applies.Add(1)
	return s.Store.Apply(ctx, u)
}

// TestWritesPerTransaction pins the store writes of a transaction that
// succeeds without a retry: successes that may be re-run after a crash are
// folded into the next write (lazy), so a saga costs its creation and its
// final status, and a TCC or XA transaction one write more, where it
// crosses the pivot (every try or prepare durable before the first
// confirm or commit). The final state read back from the store is
// complete: every branch succeeded, every call has its event.
func TestWritesPerTransaction(t *testing.T) {
	t.Parallel()
	part := func(n string) tcc.Participant {
		return tcc.Participant{Name: n, Try: "http://127.0.0.1:1/" + n + "-try", Confirm: "http://127.0.0.1:1/" + n + "-confirm",
			Cancel: "http://127.0.0.1:1/" + n + "-cancel", Payload: json.RawMessage(`{"amount":30}`)}
	}
	tccSpec := func(gid string, sequential bool) saga.Spec {
		s, err := (&tcc.Spec{GID: gid, Participants: []tcc.Participant{part("out"), part("in")}, Sequential: sequential}).Saga()
		require.NoError(t, err)
		return s
	}
	for _, tc := range []struct {
		name    string
		pattern dtx.Pattern
		spec    saga.Spec
		applies int64
		calls   int
	}{
		{"saga", dtx.PatternSaga, saga.Spec{GID: "w-saga", Steps: []saga.Step{
			{Name: "out", Action: "http://127.0.0.1:1/out", Compensate: "http://127.0.0.1:1/out-undo"},
			{Name: "in", Action: "http://127.0.0.1:1/in", Compensate: "http://127.0.0.1:1/in-undo"},
		}}, 1, 2},
		{"tcc", dtx.PatternTCC, tccSpec("w-tcc", false), 2, 4},
		{"xa", dtx.PatternXA, tccSpec("w-xa", true), 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "c.db"))}
			t.Cleanup(func() { st.Close() })
			c, err := coordinator.New(st, noopTransport{}, coordinator.Config{Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			require.NoError(t, c.Start(context.Background()))
			t.Cleanup(func() { c.Close(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d, created, err := c.SubmitPattern(ctx, tc.pattern, tc.spec)
			require.NoError(t, err)
			require.True(t, created)
			final, err := c.Wait(ctx, d.GID)
			require.NoError(t, err)
			require.Equal(t, dtx.StatusSucceeded, final.Status)
			require.Equal(t, int64(1), st.creates.Load())
			require.Equal(t, tc.applies, st.applies.Load(), "writes after the creation")
			tx, br, err := st.Get(ctx, d.GID)
			require.NoError(t, err)
			require.Equal(t, dtx.StatusSucceeded, tx.Status)
			for _, b := range br {
				require.Equal(t, dtx.BranchSucceeded, b.Action, "branch %d", b.Index)
			}
			evs, err := st.Events(ctx, d.GID)
			require.NoError(t, err)
			calls := 0
			for _, e := range evs {
				if e.Branch >= 0 {
					calls++
				}
			}
			require.Equal(t, tc.calls, calls, "an event per call: %+v", evs)
		})
	}
}
