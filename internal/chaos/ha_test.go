package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
)

func TestHAReport(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(seq int64, owner string, at, dur time.Duration) dtx.Event {
		return dtx.Event{Seq: seq, Owner: owner, At: t0.Add(at), Duration: dur, Branch: 0, Op: dtx.OpAction}
	}
	var r HAReport
	owners := map[string]bool{}
	// One owner only.
	r.Add("g1", []dtx.Event{ev(1, "a", 0, 0), ev(2, "a", 10*time.Millisecond, 5*time.Millisecond)}, owners)
	// A takeover: b's first call starts after a's last event.
	r.Add("g2", []dtx.Event{ev(1, "a", 0, 0), ev(2, "a", 10*time.Millisecond, 0), ev(3, "b", 3*time.Second, time.Second)}, owners)
	require.Empty(t, r.Overlaps)
	require.Equal(t, 2, r.Checked)
	require.Equal(t, 1, r.TakenOver)
	require.Equal(t, 2, r.Owners)
	// b called while a's call was still running and a's event came first.
	r.Add("g3", []dtx.Event{ev(1, "a", 0, 0), ev(2, "a", time.Second, 0), ev(3, "b", 1500*time.Millisecond, time.Second)}, owners)
	require.Len(t, r.Overlaps, 1)
	require.Contains(t, r.Overlaps[0], "g3")
	// Older rows without an owner are counted, not judged.
	r.Add("g4", []dtx.Event{{Seq: 1, At: t0}, ev(2, "c", 0, 0)}, owners)
	require.Equal(t, 1, r.Unattributed)
	require.Equal(t, 3, r.Owners)
}
