package coordinator_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// readCounter counts the reads of the transaction log.
type readCounter struct {
	dtx.Store
	mu    sync.Mutex
	reads map[string]int
}

func (r *readCounter) count(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads[name]++
}

func (r *readCounter) Get(ctx context.Context, gid string) (*dtx.Tx, []dtx.Branch, error) {
	r.count("Get")
	return r.Store.Get(ctx, gid)
}

func (r *readCounter) Events(ctx context.Context, gid string) ([]dtx.Event, error) {
	r.count("Events")
	return r.Store.Events(ctx, gid)
}

func (r *readCounter) List(ctx context.Context, f dtx.ListFilter) ([]dtx.Tx, error) {
	r.count("List")
	return r.Store.List(ctx, f)
}

func (r *readCounter) Counts(ctx context.Context) (map[dtx.Status]int, error) {
	r.count("Counts")
	return r.Store.Counts(ctx)
}

func (r *readCounter) Attention(ctx context.Context, f dtx.AttentionFilter) ([]dtx.TxDetail, error) {
	r.count("Attention")
	return r.Store.Attention(ctx, f)
}

// TestAttention_OneRead: the reasons come from the store's one Attention
// read, not from reading each transaction again.
func TestAttention_OneRead(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	st := &readCounter{Store: openStore(t, filepath.Join(t.TempDir(), "dtx.db")), reads: map[string]int{}}
	t.Cleanup(func() { st.Close() })
	create := func(gid string, pattern dtx.Pattern, spec string, age time.Duration) {
		t.Helper()
		at := now.Add(-age)
		require.NoError(t, st.Create(ctx, &dtx.Tx{GID: gid, Pattern: pattern, Status: dtx.StatusRunning, Spec: []byte(spec),
			Digest: "d-" + gid, CreatedAt: at, UpdatedAt: at, Deadline: now.Add(time.Hour), LeaseOwner: "c1", LeaseUntil: now.Add(time.Hour)},
			[]dtx.Branch{
				{GID: gid, Index: 0, Name: "reserve", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 1, UpdatedAt: at},
				{GID: gid, Index: 1, Name: "pay", Action: dtx.BranchPending, Compensate: dtx.BranchPending, UpdatedAt: at},
			}))
	}
	update := func(gid string, status dtx.Status, b dtx.Branch) {
		t.Helper()
		require.NoError(t, st.Apply(ctx, dtx.Update{GID: gid, Owner: "c1", At: now, Status: status, Release: status.Terminal(), Branches: []dtx.Branch{b}}))
	}
	saga2 := `{"steps":[{"name":"reserve","action":"http://x/r"},{"name":"pay","action":"http://x/p"}]}`
	// Retrying pay for an hour.
	create("stuck", dtx.PatternSaga, saga2, time.Hour)
	update("stuck", "", dtx.Branch{Index: 1, Name: "pay", Action: dtx.BranchPending, Compensate: dtx.BranchPending, ActionAttempts: 5, LastError: "HTTP 503"})
	// A TCC confirm that keeps failing: named as the participant sees it.
	tcc := `{"steps":[{"name":"reserve","action":"http://x/r","action_op":"try","compensate_op":"cancel"},` +
		`{"name":"pay","action":"http://x/p","action_op":"confirm"}]}`
	create("confirming", dtx.PatternTCC, tcc, time.Minute)
	update("confirming", "", dtx.Branch{Index: 1, Name: "pay", Action: dtx.BranchPending, Compensate: dtx.BranchSkipped, ActionAttempts: 3})
	// Young and fine; finished.
	create("fresh", dtx.PatternSaga, saga2, time.Second)
	create("done", dtx.PatternSaga, saga2, 2*time.Hour)
	update("done", dtx.StatusSucceeded, dtx.Branch{Index: 1, Name: "pay", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 9})

	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{Now: func() time.Time { return now }})
	require.NoError(t, err)
	st.reads = map[string]int{}
	items, err := c.Attention(ctx, coordinator.AttentionQuery{MinAttempts: 3, OlderThan: 30 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"Attention": 1}, st.reads, "one read of the store")

	require.Len(t, items, 2)
	require.Equal(t, "stuck", items[0].GID)
	require.Len(t, items[0].Branches, 2)
	require.Equal(t, []string{
		"branch 1 (pay) action: still pending after 5 calls; last error: HTTP 503",
		"running for 1h0m0s (older than 30m0s)",
	}, items[0].Why)
	require.Equal(t, "confirming", items[1].GID)
	require.Equal(t, []string{"branch 1 (pay) confirm: still pending after 3 calls"}, items[1].Why)

	_, err = c.Attention(ctx, coordinator.AttentionQuery{})
	require.ErrorIs(t, err, dtx.ErrInvalid, "both criteria off")
}
