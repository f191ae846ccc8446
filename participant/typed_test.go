package participant_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/internal/barriertest"
	"github.com/stretchr/testify/require"
)

// typedHarness binds the shared barrier scenarios to Typed: every
// delivery decodes a JSON body and runs a typed fn that finds its branch
// in its context.
func typedHarness(t *testing.T, db *sql.DB, b participant.Barrier) barriertest.Harness {
	h := sqlHarness(t, db, b) // migrates, and gives Count
	inc := barriertest.Increment(b.Dialect)
	h.Deliver = func(ctx context.Context, br participant.Branch, fail error) error {
		fn := participant.Typed(db, b, func(ctx context.Context, tx *sql.Tx, req struct{ N int }) (struct{ N int }, error) {
			// Deliveries run concurrently: report mistakes as errors.
			got, ok := participant.BranchFromContext(ctx)
			if !ok || got != br || req.N != 7 {
				return req, fmt.Errorf("fn got branch %+v (%v) and request %+v for %+v", got, ok, req, br)
			}
			if _, err := tx.ExecContext(ctx, inc, barriertest.Key(got)); err != nil {
				return req, err
			}
			return req, fail
		})
		res, err := fn(ctx, br, []byte(`{"N":7}`))
		if err == nil && res != nil && res != (struct{ N int }{7}) {
			return fmt.Errorf("response %#v", res)
		}
		return err
	}
	return h
}

func TestTypedBarrierSQLite(t *testing.T) {
	t.Parallel()
	barriertest.Run(t, typedHarness(t, openSQLite(t), participant.Barrier{Dialect: appdb.SQLite}))
}

func TestTypedBarrierPostgres(t *testing.T) {
	t.Parallel()
	barriertest.Run(t, typedHarness(t, openPostgres(t), participant.Barrier{Dialect: appdb.Postgres}))
}

type reserveReq struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

func (r reserveReq) Validate() error {
	if r.Qty <= 0 {
		return fmt.Errorf("qty must be positive, got %d", r.Qty)
	}
	return nil
}

type reserveResp struct {
	Left int `json:"left"`
}

// TestHandleJSON serves typed handlers over real HTTP on loopback against
// SQLite and drives them like the coordinator would: malformed bodies are
// 400 definite failures that run nothing, dtx.Permanent is a 409 refusal,
// other errors are 500 and the retry runs again, and the barrier still
// absorbs duplicates, a null compensation and the hanging action after it.
func TestHandleJSON(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	ctx := context.Background()
	b := participant.Barrier{}
	require.NoError(t, b.Migrate(ctx, db))
	_, err := db.Exec(`CREATE TABLE stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO stock VALUES ('apple', 3)`)
	require.NoError(t, err)

	var runs atomic.Int64
	var failNext atomic.Bool
	move := func(sign int) participant.TxFunc[reserveReq, reserveResp] {
		return func(ctx context.Context, tx *sql.Tx, req reserveReq) (reserveResp, error) {
			runs.Add(1)
			var left int
			if err := tx.QueryRowContext(ctx, `SELECT qty FROM stock WHERE item = ?`, req.Item).Scan(&left); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return reserveResp{}, dtx.Permanentf("no item %q", req.Item)
				}
				return reserveResp{}, err
			}
			left += sign * req.Qty
			if left < 0 {
				return reserveResp{}, dtx.Permanentf("out of stock: %d left", left+req.Qty)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE stock SET qty = ? WHERE item = ?`, left, req.Item); err != nil {
				return reserveResp{}, err
			}
			if failNext.CompareAndSwap(true, false) {
				return reserveResp{}, errors.New("lost the connection")
			}
			return reserveResp{Left: left}, nil
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/reserve", participant.HandleJSON(db, b, move(-1)))
	mux.Handle("/release", participant.HandleJSON(db, b, move(+1)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	type answer struct {
		code int
		body string
	}
	call := func(path, gid string, op dtx.Op, body string) answer {
		req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(dtx.HeaderGID, gid)
		req.Header.Set(dtx.HeaderBranch, "0")
		req.Header.Set(dtx.HeaderOp, string(op))
		req.Header.Set(dtx.HeaderAttempt, "1")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		if resp.StatusCode != http.StatusOK {
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
		}
		return answer{resp.StatusCode, string(out)}
	}
	stock := func() int {
		var q int
		require.NoError(t, db.QueryRow(`SELECT qty FROM stock WHERE item = 'apple'`).Scan(&q))
		return q
	}
	apple := func(qty int) string { return fmt.Sprintf(`{"item":"apple","qty":%d}`, qty) }

	// Malformed requests: 400, nothing runs and no barrier row is left.
	for _, body := range []string{``, `{"item":`, `[1,2]`, `{"item":"apple","qty":"two"}`, apple(1) + ` {}`} {
		a := call("/reserve", "bad", dtx.OpAction, body)
		require.Equal(t, http.StatusBadRequest, a.code, "body %q", body)
		require.Contains(t, a.body, "participant_test.reserveReq", "body %q", body)
	}
	a := call("/reserve", "bad", dtx.OpAction, apple(0))
	require.Equal(t, http.StatusBadRequest, a.code)
	require.Contains(t, a.body, "qty must be positive")
	require.Equal(t, int64(0), runs.Load(), "fn must not run for a bad request")
	a = call("/reserve", "bad", dtx.OpAction, apple(1))
	require.Equal(t, answer{200, `{"left":2}`}, answer{a.code, strings.TrimSpace(a.body)}, "the gid's barrier is untouched by the 400s")

	// A success, then its duplicate: fn ran once, the duplicate is {}.
	a = call("/reserve", "g1", dtx.OpAction, apple(1))
	require.Equal(t, 200, a.code)
	require.JSONEq(t, `{"left":1}`, a.body)
	a = call("/reserve", "g1", dtx.OpAction, apple(1))
	require.Equal(t, 200, a.code)
	require.JSONEq(t, `{}`, a.body)
	require.Equal(t, 1, stock())

	// dtx.Permanent: a 409 refusal; its writes and barrier row rolled back.
	a = call("/reserve", "g2", dtx.OpAction, apple(5))
	require.Equal(t, http.StatusConflict, a.code)
	require.Contains(t, a.body, "out of stock: 1 left")
	a = call("/reserve", "g2", dtx.OpAction, `{"item":"pear","qty":1}`)
	require.Equal(t, http.StatusConflict, a.code)
	require.Contains(t, a.body, `no item \"pear\"`)
	// ...so its compensation is a null compensation: {} without running.
	before := runs.Load()
	a = call("/release", "g2", dtx.OpCompensate, apple(5))
	require.Equal(t, answer{200, `{}`}, answer{a.code, strings.TrimSpace(a.body)})
	require.Equal(t, before, runs.Load())
	require.Equal(t, 1, stock())

	// Any other error: 500, rolled back, and the retry runs fn again.
	failNext.Store(true)
	a = call("/reserve", "g3", dtx.OpAction, apple(1))
	require.Equal(t, http.StatusInternalServerError, a.code)
	require.Contains(t, a.body, "lost the connection")
	require.Equal(t, 1, stock())
	a = call("/reserve", "g3", dtx.OpAction, apple(1))
	require.Equal(t, 200, a.code)
	require.JSONEq(t, `{"left":0}`, a.body)

	// Compensations run once, then answer {}.
	a = call("/release", "g3", dtx.OpCompensate, apple(1))
	require.JSONEq(t, `{"left":1}`, a.body)
	a = call("/release", "g3", dtx.OpCompensate, apple(1))
	require.JSONEq(t, `{}`, a.body)
	require.Equal(t, 1, stock())

	// Null compensation first, then the hanging action is refused (409).
	before = runs.Load()
	a = call("/release", "g4", dtx.OpCompensate, apple(1))
	require.Equal(t, answer{200, `{}`}, answer{a.code, strings.TrimSpace(a.body)})
	a = call("/reserve", "g4", dtx.OpAction, apple(1))
	require.Equal(t, http.StatusConflict, a.code)
	require.Contains(t, a.body, "hanging")
	require.Equal(t, before, runs.Load())
	require.Equal(t, 1, stock())
}

func TestStatusAndBadRequest(t *testing.T) {
	require.NoError(t, participant.BadRequest(nil))
	bad := participant.BadRequest(errors.New("no body"))
	require.True(t, dtx.IsPermanent(bad), "a bad request is a definite failure")
	require.Equal(t, "no body", bad.Error())
	require.Equal(t, http.StatusBadRequest, participant.Status(fmt.Errorf("wrapped: %w", bad)))
	require.Equal(t, http.StatusConflict, participant.Status(dtx.Permanentf("no")))
	require.Equal(t, http.StatusConflict, participant.Status(participant.ErrHanging))
	require.Equal(t, http.StatusInternalServerError, participant.Status(errors.New("maybe")))

	w := httptest.NewRecorder()
	participant.WriteError(w, bad)
	requireProblem(t, w, http.StatusBadRequest, "no body")

	_, ok := participant.BranchFromContext(context.Background())
	require.False(t, ok)
}

// TestDecodeRequest covers the decoding rules Typed applies before any
// barrier runs.
func TestDecodeRequest(t *testing.T) {
	r, err := participant.DecodeRequest[reserveReq]([]byte(` {"item":"a","qty":2,"extra":true} `))
	require.NoError(t, err, "unknown fields are ignored, as encoding/json does")
	require.Equal(t, reserveReq{Item: "a", Qty: 2}, r)

	p, err := participant.DecodeRequest[*reserveReq]([]byte(`{"item":"a","qty":3}`))
	require.NoError(t, err, "a pointer request type works and is validated")
	require.Equal(t, 3, p.Qty)
	p, err = participant.DecodeRequest[*reserveReq]([]byte(`null`))
	require.NoError(t, err, "null is a nil pointer, not validated")
	require.Nil(t, p)
	_, err = participant.DecodeRequest[*reserveReq]([]byte(`{"qty":-1}`))
	require.Equal(t, http.StatusBadRequest, participant.Status(err))

	for _, body := range []string{``, `nul`, `{} {}`, `{"qty":1.5}`} {
		_, err := participant.DecodeRequest[reserveReq]([]byte(body))
		var bad *participant.BadRequestError
		require.ErrorAs(t, err, &bad, "body %q", body)
	}
	raw, err := participant.DecodeRequest[map[string]any]([]byte(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": float64(1)}, raw)
}
