package storetest

import (
	"context"
	"time"

	"github.com/dtxhq/dtx"
)

// SagaSpec is the spec of the 2-step saga WriteSaga records.
var SagaSpec = []byte(`{"gid":"x","steps":[{"name":"out","action":"http://127.0.0.1:1/out","compensate":"http://127.0.0.1:1/out-undo","payload":{"amount":30}},` +
	`{"name":"in","action":"http://127.0.0.1:1/in","compensate":"http://127.0.0.1:1/in-undo","payload":{"amount":30}}]}`)

// WriteSaga writes what the coordinator writes for a 2-step saga that
// succeeds: a Create of the transaction and its two branches, then one
// Apply of both successes, their events and the final status. Stores'
// benchmarks run it to measure their cost per saga.
func WriteSaga(ctx context.Context, st dtx.Store, gid string) error {
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	tx := &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: SagaSpec, Digest: "d",
		CreatedAt: now, UpdatedAt: now, Deadline: now.Add(time.Hour), LeaseOwner: "bench", LeaseUntil: now.Add(time.Minute)}
	br := []dtx.Branch{{Index: 0, Name: "out"}, {Index: 1, Name: "in"}}
	if err := st.Create(ctx, tx, br); err != nil {
		return err
	}
	for i := range br {
		br[i].Action, br[i].ActionAttempts = dtx.BranchSucceeded, 1
	}
	return st.Apply(ctx, dtx.Update{GID: gid, Owner: "bench", At: now, Status: dtx.StatusSucceeded, Branches: br, Release: true,
		Events: []dtx.Event{{At: now, Branch: 0, Op: dtx.OpAction, Outcome: "success"}, {At: now, Branch: 1, Op: dtx.OpAction, Outcome: "success"}}})
}
