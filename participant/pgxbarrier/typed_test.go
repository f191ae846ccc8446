package pgxbarrier_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/internal/barriertest"
	"github.com/dtxhq/dtx/participant/pgxbarrier"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

type counterReq struct {
	By int `json:"by"`
}

func (r counterReq) Validate() error {
	if r.By != 1 {
		return errors.New("by must be 1")
	}
	return nil
}

// TestTypedPgx runs the shared barrier scenarios (duplicates, null
// compensation, hanging action, rollback on error, concurrent deliveries)
// through pgxbarrier.Typed on PostgreSQL, and checks that a malformed
// body is a 400 that runs nothing.
func TestTypedPgx(t *testing.T) {
	t.Parallel()
	pool := openPool(t)
	b := participant.Barrier{}
	h := harness(t, pool, b) // migrates, and gives Count
	inc := barriertest.Increment(appdb.Postgres)
	var runs atomic.Int64
	typed := func(fail error) participant.BranchFunc {
		return pgxbarrier.Typed(pool, b, func(ctx context.Context, tx pgx.Tx, req counterReq) (map[string]int, error) {
			runs.Add(1)
			br, ok := participant.BranchFromContext(ctx)
			if !ok {
				return nil, errors.New("no branch in the context")
			}
			if _, err := tx.Exec(ctx, inc, barriertest.Key(br)); err != nil {
				return nil, err
			}
			return map[string]int{"by": req.By}, fail
		})
	}
	h.Deliver = func(ctx context.Context, br participant.Branch, fail error) error {
		res, err := typed(fail)(ctx, br, []byte(`{"by":1}`))
		if err == nil && res != nil {
			if got, ok := res.(map[string]int); !ok || got["by"] != 1 {
				return errors.New("unexpected response")
			}
		}
		return err
	}
	barriertest.Run(t, h)

	ctx := context.Background()
	br := participant.Branch{GID: "typed-bad", Index: 0, Op: dtx.OpAction}
	runs.Store(0)
	for _, body := range []string{`{"by":`, `{"by":2}`, `"x"`} {
		_, err := typed(nil)(ctx, br, []byte(body))
		require.Equal(t, http.StatusBadRequest, participant.Status(err), "body %q: %v", body, err)
	}
	require.Equal(t, int64(0), runs.Load())
	require.Equal(t, 0, h.Count(ctx, br))
	res, err := typed(nil)(ctx, br, []byte(`{"by":1}`))
	require.NoError(t, err, "the 400s left no barrier row")
	require.Equal(t, map[string]int{"by": 1}, res)
	require.Equal(t, 1, h.Count(ctx, br))
}
