package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/dtxhq/dtx"
)

// clockSlack absorbs the store's millisecond timestamps (an event's time
// is truncated to the millisecond, its duration is not).
const clockSlack = 2 * time.Millisecond

// HAReport is the result of checking transaction histories for drivers
// that overlapped.
type HAReport struct {
	// Checked counts the transactions whose history was checked.
	Checked int `json:"checked"`
	// Owners counts the distinct lease owners (coordinator incarnations)
	// that wrote events.
	Owners int `json:"owners"`
	// TakenOver counts transactions driven by more than one owner, one
	// after the other (a takeover after a crash).
	TakenOver int `json:"taken_over"`
	// Overlaps describes each pair of calls of one transaction made by two
	// owners at the same time, or out of order with the history.
	Overlaps []string `json:"overlaps,omitempty"`
	// Unattributed counts events without an owner (written by an older
	// store); they are not checked.
	Unattributed int `json:"unattributed_events,omitempty"`
}

// Add checks one transaction's history and accumulates the result.
//
// The store fences every write by the writer's lease and records the
// writer on each event (dtx.Event.Owner). A coordinator takes a
// transaction over only once the previous owner's lease has expired, so
// every call it makes starts after the last event the previous owner could
// still write. In the history (ordered by Seq) this means: for events a
// before b written by different owners, b's call started (b.At minus its
// duration) no earlier than a's ended (a.At). An overlap is two
// coordinators calling participants of one transaction at once.
func (r *HAReport) Add(gid string, evs []dtx.Event, owners map[string]bool) {
	r.Checked++
	seen := map[string]bool{}
	var attributed []dtx.Event
	for _, e := range evs {
		if e.Owner == "" {
			r.Unattributed++
			continue
		}
		seen[e.Owner] = true
		owners[e.Owner] = true
		attributed = append(attributed, e)
	}
	r.Owners = len(owners)
	if len(seen) > 1 {
		r.TakenOver++
	}
	slices.SortFunc(attributed, func(a, b dtx.Event) int { return int(a.Seq - b.Seq) })
	for i, a := range attributed {
		for _, b := range attributed[i+1:] {
			if a.Owner == b.Owner {
				continue
			}
			if start := b.At.Add(-b.Duration); start.Add(clockSlack).Before(a.At) {
				r.Overlaps = append(r.Overlaps, fmt.Sprintf(
					"%s: event %d (%s, branch %d %s, ended %s) and event %d (%s, branch %d %s, started %s) overlap",
					gid, a.Seq, a.Owner, a.Branch, a.Op, a.At.Format(time.StampMilli),
					b.Seq, b.Owner, b.Branch, b.Op, start.Format(time.StampMilli)))
			}
		}
	}
}
