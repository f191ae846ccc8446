package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// kindNotes say how each kind of fault is injected, for the table.
var kindNotes = map[string]string{
	string(CoordinatorKill):  "SIGKILL a coordinator, restart it",
	string(ShopKill):         "SIGKILL the shop, restart it",
	string(ParticipantDown):  "SIGKILL the shop, restart it seconds later",
	string(BrokerRestart):    "stop NATS, reopen same files and port",
	string(DuplicateRequest): "order sent twice at once, same key",
	string(Fail):             "call/delivery refused before it runs",
	string(Delay):            "call/delivery answered late",
	string(Lose):             "committed, then response/ack lost",
}

// PrintTable writes the result as tables for people.
func PrintTable(w io.Writer, r *Result) {
	coords := fmt.Sprintf("%d coordinator(s) on %s", r.Coordinators, r.Store)
	if r.Coordinators == 0 {
		coords = "no coordinator"
	}
	fmt.Fprintf(w, "\ndtx chaos: pattern %s, %s, %.0fs of load and faults, seed %d\n\n", r.Pattern, coords, r.DurationS, r.Seed)
	fmt.Fprintf(w, "%-18s %7s  %s\n", "fault", "count", "how")
	kinds := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		pi, pj := slices.Index(r.Planned, kinds[i]), slices.Index(r.Planned, kinds[j])
		if pi != pj {
			return pi < pj
		}
		return kinds[i] < kinds[j]
	})
	for _, k := range kinds {
		mark := ""
		if slices.Contains(r.Missing, k) {
			mark = "  <- planned, never injected"
		}
		fmt.Fprintf(w, "%-18s %7d  %s%s\n", k, r.Faults[k], kindNotes[k], mark)
	}
	fmt.Fprintf(w, "\n%-18s %7s %9s %9s %7s\n", "orders by pattern", "total", "completed", "cancelled", "pending")
	pats := make([]string, 0, len(r.ByPattern))
	for p := range r.ByPattern {
		pats = append(pats, p)
	}
	sort.Strings(pats)
	for _, p := range pats {
		m := r.ByPattern[p]
		fmt.Fprintf(w, "%-18s %7d %9d %9d %7d\n", p, m["completed"]+m["cancelled"]+m["pending"], m["completed"], m["cancelled"], m["pending"])
	}
	fmt.Fprintf(w, "%-18s %7d %9d %9d\n", "all", r.Orders, r.Completed, r.Cancelled)
	fmt.Fprintf(w, "\nclient requests %d (%d retried with the same idempotency key); recovery took %.1fs after the faults stopped\n",
		r.Requests, r.ClientRetries, r.RecoveryS)
	if r.HA != nil {
		fmt.Fprintf(w, "coordinator histories: %d transactions checked, %d lease owners, %d taken over after a crash, %d overlapping drivers\n",
			r.HA.Checked, r.HA.Owners, r.HA.TakenOver, len(r.HA.Overlaps))
	}
	if len(r.PGFailoverS) > 0 {
		printFailovers(w, r.PGFailoverS)
	}
	fmt.Fprintf(w, "stuck      %d\nviolations %d\n", r.Stuck, r.Violations)
	for _, v := range r.ViolationList {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	for _, s := range r.StuckList {
		fmt.Fprintf(w, "  - stuck: %s\n", s)
	}
	if r.OK {
		fmt.Fprintf(w, "result: OK — nothing lost, nothing applied twice, every planned fault injected\n")
		return
	}
	var why []string
	if r.Stuck > 0 {
		why = append(why, fmt.Sprintf("%d stuck", r.Stuck))
	}
	if r.Violations > 0 {
		why = append(why, fmt.Sprintf("%d violations", r.Violations))
	}
	if len(r.Missing) > 0 {
		why = append(why, "faults never injected: "+strings.Join(r.Missing, ", "))
	}
	fmt.Fprintf(w, "result: FAILED — %s\n", strings.Join(why, "; "))
}
