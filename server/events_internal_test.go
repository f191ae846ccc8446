package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

func newTestHub(t *testing.T) (*hub, dtx.Store) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	h := newHub(st, 10*time.Millisecond)
	t.Cleanup(h.close)
	return h, st
}

func pollerRunning(h *hub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopPoll != nil
}

func TestHub_PollsOnlyWhileSubscribed(t *testing.T) {
	h, _ := newTestHub(t)
	require.False(t, pollerRunning(h))
	a, b := h.subscribe(), h.subscribe()
	require.True(t, pollerRunning(h))
	h.unsubscribe(a)
	require.True(t, pollerRunning(h))
	h.unsubscribe(b)
	require.False(t, pollerRunning(h))
	h.unsubscribe(b) // idempotent
	c := h.subscribe()
	require.True(t, pollerRunning(h), "restarts for a new subscriber")
	h.close()
	require.False(t, pollerRunning(h))
	require.Nil(t, h.subscribe(), "closed")
	select {
	case <-h.done:
	default:
		t.Fatal("done not closed")
	}
	h.unsubscribe(c)
}

func TestHub_DropsSlowSubscriber(t *testing.T) {
	h, _ := newTestHub(t)
	slow, fast := h.subscribe(), h.subscribe()
	for i := range eventBuffer + 1 {
		h.publish(sseEvent{name: "tx", data: []byte{byte(i)}})
		if i%16 == 0 {
			for len(fast.ch) > 0 {
				<-fast.ch
			}
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("a subscriber with a full buffer is dropped")
	}
	select {
	case <-fast.gone:
		t.Fatal("a subscriber that keeps up stays")
	default:
	}
}

func TestHub_ScanReportsFinishedTransactionsOutsideTheWindow(t *testing.T) {
	h, st := newTestHub(t)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	mk := func(gid string, at time.Time) {
		require.NoError(t, st.Create(ctx, &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{}`),
			Digest: gid, CreatedAt: at, UpdatedAt: at, LeaseOwner: "me", LeaseUntil: at.Add(2 * time.Hour)}, nil))
	}
	mk("old-running", old)
	for i := range EventWindow {
		gid := fmt.Sprintf("new-%03d", i)
		mk(gid, old.Add(time.Minute+time.Duration(i)*time.Millisecond))
		if i%50 == 0 {
			require.NoError(t, st.Apply(ctx, dtx.Update{GID: gid, Owner: "me", At: old, Status: dtx.StatusSucceeded, Release: true}))
		}
	}
	base, changed, err := h.scan(ctx, nil)
	require.NoError(t, err)
	require.Contains(t, base, "old-running", "unfinished transactions are watched even outside the newest window")
	require.Len(t, changed, len(base), "everything is new to an empty baseline")

	_, changed, err = h.scan(ctx, base)
	require.NoError(t, err)
	require.Empty(t, changed, "nothing changed")

	require.NoError(t, st.Apply(ctx, dtx.Update{GID: "old-running", Owner: "me", At: time.Now(), Status: dtx.StatusFailed, Reason: "boom", Release: true}))
	next, changed, err := h.scan(ctx, base)
	require.NoError(t, err)
	require.Len(t, changed, 1)
	require.Equal(t, "old-running", changed[0].GID)
	require.Equal(t, dtx.StatusFailed, changed[0].Status)
	require.Equal(t, "boom", changed[0].Reason)
	require.Equal(t, dtx.StatusFailed, next["old-running"].status)

	_, changed, err = h.scan(ctx, next)
	require.NoError(t, err)
	require.Empty(t, changed, "a finished transaction outside the window is not read again")
}
