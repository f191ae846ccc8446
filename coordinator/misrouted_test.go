package coordinator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
)

// TestCoordinator_MisroutedActionFailsAtOnce: an action answered 404 by
// something that is not a dtx participant (no problem body) ran nothing, so
// it is a definite failure: the saga compensates after one call, an alert
// is raised for it at once, and the reason names the misrouted problem type
// and the URL.
func TestCoordinator_MisroutedActionFailsAtOnce(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			return http.StatusNotFound
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	alerts := make(chan coordinator.Alert, 16)
	c := newCoordinator(t, st, coordinator.Config{AlertAfter: 100, OnAlert: func(a coordinator.Alert) { alerts <- a }})
	d := submitWait(t, c, twoSteps(p, "misrouted-action"))
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Equal(t, 1, p.count("/b"), "a misrouted action is not retried")
	require.Contains(t, d.Reason, p.url("/b")+" answered 404 (not a dtx participant: wrong URL?)")
	require.Contains(t, d.Reason, dtx.TypeMisrouted)
	a := <-alerts
	require.True(t, a.Misrouted)
	require.Equal(t, 1, a.Attempts)
	require.Equal(t, "b", a.Name)
	require.Equal(t, "action", a.Op)
}

// TestCoordinator_MisroutedCompensationAlertsAndNeedsAttention: a
// compensation answered 404 by a non-participant is never given up (it
// keeps being retried), but it alerts on its first call, not after
// AlertAfter, and the attention view names it as a wrong URL.
func TestCoordinator_MisroutedCompensationAlertsAndNeedsAttention(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		switch path {
		case "/b":
			return http.StatusConflict
		case "/a-undo":
			return http.StatusMethodNotAllowed
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	alerts := make(chan coordinator.Alert, 1000)
	c := newCoordinator(t, st, coordinator.Config{AlertAfter: 1000, OnAlert: func(a coordinator.Alert) { alerts <- a }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, twoSteps(p, "misrouted-undo"))
	require.NoError(t, err)

	var a coordinator.Alert
	select {
	case a = <-alerts:
	case <-ctx.Done():
		t.Fatal("no alert for a misrouted compensation")
	}
	require.True(t, a.Misrouted)
	require.Equal(t, 1, a.Attempts, "alerted on the first misrouted call")
	require.Equal(t, "compensate", a.Op)
	require.Contains(t, a.LastErr, p.url("/a-undo")+" answered 405")

	want := "step 1 (a) compensate: " + p.url("/a-undo") + " answered 405 (not a dtx participant: wrong URL?)"
	require.Eventually(t, func() bool {
		items, err := c.Attention(ctx, coordinator.AttentionQuery{MinAttempts: 2})
		require.NoError(t, err)
		for _, it := range items {
			if it.GID == "misrouted-undo" {
				return strings.Join(it.Why, "\n") == want
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "attention names the misrouted compensation")
	d, _, err := st.Get(ctx, "misrouted-undo")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusCompensating, d.Status, "a misrouted compensation is never given up")
	require.Len(t, alerts, 0, "one alert, not one per retry")
}
