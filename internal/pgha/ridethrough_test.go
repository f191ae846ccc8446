package pgha_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/embed"
	"github.com/dtxhq/dtx/internal/chaos"
	"github.com/dtxhq/dtx/internal/pgha"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// startCluster starts a pg_auto_failover cluster for t, closed when t
// ends; it skips t when pg_auto_failover is not installed, unless
// DTX_REQUIRE_PGHA=1.
func startCluster(t *testing.T) *pgha.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgha.Start(ctx, pgha.Config{})
	if err != nil {
		if errors.Is(err, pgha.ErrNotInstalled) && os.Getenv(pgha.EnvRequire) != "1" {
			t.Skipf("skipping pg_auto_failover test: %v (set %s=1 to make this a failure)", err, pgha.EnvRequire)
		}
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// acks records when submissions were acknowledged.
type acks struct {
	mu   sync.Mutex
	gids []string
	at   []time.Time
}

func (a *acks) add(gid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gids = append(a.gids, gid)
	a.at = append(a.at, time.Now())
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.gids)
}

// longestGap is the longest time after from without an acknowledgement.
func (a *acks) longestGap(from time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := slices.Clone(a.at)
	slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
	var gap time.Duration
	prev := from
	for _, t := range at {
		if t.Before(from) {
			continue
		}
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return gap
}

// TestCoordinatorsRideThroughFailover runs two coordinators on the
// cluster's multi-host DSN, submitting sagas to loopback participants
// without pause, and kills the primary. The coordinators must ride through
// the promotion (their connections fail, pgx reconnects to the new
// primary, leases are renewed or taken over): afterwards every
// acknowledged saga is in the store and has succeeded, and no saga was
// driven by two coordinators at once.
func TestCoordinatorsRideThroughFailover(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dsn, err := c.CreateDatabase(ctx, "dtx")
	require.NoError(t, err)

	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer part.Close()

	var coords []*embed.Coordinator
	for i := range 2 {
		ec, err := embed.Open(ctx, embed.Config{Store: dsn, Coordinator: coordinator.Config{
			Owner: fmt.Sprintf("c%d", i+1), LeaseTTL: 2 * time.Second,
			// Every store call fails while no node takes writes: keep the
			// test log to the outcome.
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			RetryBase: 50 * time.Millisecond, RetryMax: time.Second,
		}})
		require.NoError(t, err)
		coords = append(coords, ec)
	}
	defer func() {
		for _, ec := range coords {
			ec.Close(context.Background())
		}
	}()

	// Load: each worker submits sagas one after the other, alternating
	// coordinators; an answered submission is acknowledged.
	var ok acks
	var attempted sync.Map // every gid submitted
	load, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; load.Err() == nil; i++ {
				gid := fmt.Sprintf("w%d-%d", w, i)
				attempted.Store(gid, true)
				spec := saga.Spec{GID: gid, Steps: []saga.Step{
					{Action: part.URL + "/a1", Compensate: part.URL + "/c1"},
					{Action: part.URL + "/a2", Compensate: part.URL + "/c2"},
				}}
				sctx, cancel := context.WithTimeout(load, 10*time.Second)
				_, err := coords[(w+i)%2].Client().SubmitSaga(sctx, spec, false)
				cancel()
				if err == nil {
					ok.add(gid)
				} else if load.Err() == nil {
					// The store is unreachable: back off a little.
					select {
					case <-load.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
	waitAcks := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return ok.count() >= n }, 2*time.Minute, 20*time.Millisecond, "%d acknowledged sagas", n)
	}
	waitAcks(100)

	killedAt := time.Now()
	before := ok.count()
	node, err := c.KillPrimary(ctx)
	require.NoError(t, err)
	promoted, err := c.WaitFailover(ctx)
	require.NoError(t, err)
	waitAcks(before + 200) // the coordinators commit again
	stopLoad()
	wg.Wait()
	pause := ok.longestGap(killedAt)
	t.Logf("node %d (primary) killed: the standby took writes after %v; longest time without an acknowledged saga: %v; %d acknowledged in all",
		node+1, promoted.Round(time.Millisecond), pause.Round(time.Millisecond), ok.count())

	// Every acknowledged saga finishes.
	st, err := postgres.Open(ctx, dsn, sqlstore.Config{})
	require.NoError(t, err)
	defer st.Close()
	for _, gid := range ok.gids {
		require.Eventually(t, func() bool {
			tx, _, err := st.Get(ctx, gid)
			return err == nil && tx.Status.Terminal()
		}, 2*time.Minute, 50*time.Millisecond, "saga %s finishes", gid)
		tx, _, err := st.Get(ctx, gid)
		require.NoError(t, err)
		require.Equal(t, dtx.StatusSucceeded, tx.Status, "saga %s", gid)
	}
	// No saga, acknowledged or not, was driven by two coordinators at once.
	var rep chaos.HAReport
	owners := map[string]bool{}
	attempted.Range(func(k, _ any) bool {
		gid := k.(string)
		if _, _, err := st.Get(ctx, gid); errors.Is(err, dtx.ErrNotFound) {
			return true // never persisted
		}
		evs, err := st.Events(ctx, gid)
		require.NoError(t, err)
		rep.Add(gid, evs, owners)
		return true
	})
	t.Logf("histories checked: %d, owners %d, taken over %d", rep.Checked, rep.Owners, rep.TakenOver)
	require.Empty(t, rep.Overlaps)
	require.GreaterOrEqual(t, rep.Checked, ok.count())
}
