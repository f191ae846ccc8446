package dtxtest

import (
	"fmt"

	"github.com/dtxhq/dtx"
)

// scenario is one way to disturb one transaction.
type scenario struct {
	kind Kind
	name string
	// expected is the status of the case's clean run.
	expected dtx.Status
	// target is the operation a per-operation scenario disturbs (for
	// null-compensation, the branch whose action is withheld).
	target opKey
	// write is the durable write (from 1) a crash scenario crashes at.
	write int
}

// derive lists the scenarios played after a case's clean run, in a fixed
// order: every per-operation scenario on every operation the clean run
// called, a crash at every write it made, then the storm.
func derive(clean *cleanRun, storm int) []scenario {
	exp := clean.status
	out := []scenario{
		{kind: Duplicate, name: "every call delivered twice", expected: exp},
		{kind: ConcurrentDuplicate, name: "every call delivered twice at once", expected: exp},
	}
	for _, k := range []Kind{LostRequest, LostResponse, LateOriginal} {
		for _, op := range clean.ops {
			out = append(out, scenario{kind: k, name: fmt.Sprintf("%s of %s", k, op), expected: exp, target: op})
		}
	}
	for _, b := range clean.compensatable {
		out = append(out, scenario{kind: NullCompensation, expected: exp,
			name:   fmt.Sprintf("step %d's action withheld until after its compensation", b+1),
			target: opKey{Branch: b}})
	}
	for w := 1; w <= clean.writes; w++ {
		out = append(out,
			scenario{kind: CrashBeforeWrite, name: fmt.Sprintf("coordinator crash before write %d of %d", w, clean.writes), expected: exp, write: w},
			scenario{kind: CrashAfterWrite, name: fmt.Sprintf("coordinator crash after write %d of %d", w, clean.writes), expected: exp, write: w})
	}
	for i := 1; i <= storm; i++ {
		out = append(out, scenario{kind: Storm, name: fmt.Sprintf("storm %d", i), expected: exp})
	}
	return out
}
