package participant_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
	"github.com/stretchr/testify/require"
)

func branchRequest(method, gid, branch, op, body string) *http.Request {
	r := httptest.NewRequest(method, "/op", strings.NewReader(body))
	if gid != "" {
		r.Header.Set(dtx.HeaderGID, gid)
	}
	if branch != "" {
		r.Header.Set(dtx.HeaderBranch, branch)
	}
	if op != "" {
		r.Header.Set(dtx.HeaderOp, op)
	}
	r.Header.Set(dtx.HeaderAttempt, "1")
	return r
}

func TestBranchFromRequest(t *testing.T) {
	br, err := participant.BranchFromRequest(branchRequest("POST", "g1", "3", "compensate", ""))
	require.NoError(t, err)
	require.Equal(t, participant.Branch{GID: "g1", Index: 3, Op: dtx.OpCompensate}, br)

	br, err = participant.BranchFromRequest(branchRequest("POST", "g1", "0", "try", ""))
	require.NoError(t, err)
	require.Equal(t, dtx.Op("try"), br.Op)

	for _, c := range []struct{ gid, branch, op, want string }{
		{"", "0", "action", dtx.HeaderGID},
		{"g", "", "action", dtx.HeaderBranch},
		{"g", "0", "", dtx.HeaderOp},
		{"g", "x", "action", dtx.HeaderBranch},
		{"g", "-1", "action", dtx.HeaderBranch},
		{"g", "+1", "action", dtx.HeaderBranch},
		{"g", "99999999999", "action", dtx.HeaderBranch},
		{"g", "0", "Action", dtx.HeaderOp},
		{"g", "0", "do-it", dtx.HeaderOp},
		{strings.Repeat("g", 300), "0", "action", dtx.HeaderGID},
	} {
		_, err := participant.BranchFromRequest(branchRequest("POST", c.gid, c.branch, c.op, ""))
		require.Error(t, err, "%+v", c)
		require.Contains(t, err.Error(), c.want, "%+v", c)
	}
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func requireProblem(t *testing.T, w *httptest.ResponseRecorder, status int, detail string) {
	t.Helper()
	require.Equal(t, status, w.Code)
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p problemBody
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	require.Equal(t, problemBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: p.Detail}, p)
	require.Contains(t, p.Detail, detail)
}

func TestHandlerStatusMapping(t *testing.T) {
	var got struct {
		br   participant.Branch
		body string
	}
	h := participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		require.NotNil(t, ctx)
		got.br, got.body = br, string(body)
		switch string(body) {
		case `"nil"`:
			return nil, nil
		case `"result"`:
			return map[string]int{"reserved": 2}, nil
		case `"refuse"`:
			return nil, fmt.Errorf("reserve: %w", dtx.Permanentf("out of stock"))
		case `"hanging"`:
			return nil, participant.ErrHanging
		case `"unencodable"`:
			return func() {}, nil
		default:
			return nil, errors.New("database is down")
		}
	})

	w := serve(h, branchRequest("POST", "g1", "2", "action", `"nil"`))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.JSONEq(t, `{}`, w.Body.String())
	require.Equal(t, participant.Branch{GID: "g1", Index: 2, Op: dtx.OpAction}, got.br)
	require.Equal(t, `"nil"`, got.body)

	w = serve(h, branchRequest("POST", "g1", "2", "action", `"result"`))
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"reserved":2}`, w.Body.String())

	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "action", `"refuse"`)), http.StatusConflict, "out of stock")
	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "action", `"hanging"`)), http.StatusConflict, "hanging")
	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "action", `"other"`)), http.StatusInternalServerError, "database is down")
	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "action", `"unencodable"`)), http.StatusInternalServerError, "encode")

	got.body = "untouched"
	requireProblem(t, serve(h, branchRequest("POST", "", "2", "action", `"nil"`)), http.StatusBadRequest, dtx.HeaderGID)
	requireProblem(t, serve(h, branchRequest("POST", "g1", "two", "action", `"nil"`)), http.StatusBadRequest, dtx.HeaderBranch)
	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "", `"nil"`)), http.StatusBadRequest, dtx.HeaderOp)
	requireProblem(t, serve(h, branchRequest("POST", "g1", "2", "action", strings.Repeat("x", participant.MaxBodySize+1))), http.StatusBadRequest, "1 MiB")
	w = serve(h, branchRequest("GET", "g1", "2", "action", ""))
	requireProblem(t, w, http.StatusMethodNotAllowed, "POST")
	require.Equal(t, "POST", w.Header().Get("Allow"))
	require.Equal(t, "untouched", got.body, "fn must not be called for rejected requests")

	// Exactly MaxBodySize is accepted.
	w = serve(h, branchRequest("POST", "g1", "2", "action", strings.Repeat("x", participant.MaxBodySize)))
	require.Equal(t, http.StatusInternalServerError, w.Code) // fn's default branch
	require.Len(t, got.body, participant.MaxBodySize)
}

func TestWriteErrorAndJSON(t *testing.T) {
	w := httptest.NewRecorder()
	participant.WriteError(w, dtx.Permanentf("no"))
	requireProblem(t, w, http.StatusConflict, "no")

	w = httptest.NewRecorder()
	participant.WriteError(w, errors.New("maybe"))
	requireProblem(t, w, http.StatusInternalServerError, "maybe")

	w = httptest.NewRecorder()
	participant.WriteJSON(w, http.StatusCreated, []int{1, 2})
	require.Equal(t, http.StatusCreated, w.Code)
	require.JSONEq(t, `[1,2]`, w.Body.String())
}

// TestHandlerWithBarrier runs a participant end to end over real HTTP on
// loopback: a handler using Barrier.Do on SQLite, driven like the
// coordinator would (duplicates, null compensation, hanging action).
func TestHandlerWithBarrier(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	b := participant.Barrier{}
	require.NoError(t, b.Migrate(ctx, db))
	_, err := db.Exec(`CREATE TABLE stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO stock VALUES ('apple', 3)`)
	require.NoError(t, err)

	h := participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		var req struct{ Qty int }
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, dtx.Permanentf("bad body: %v", err)
		}
		delta := -req.Qty
		if br.Op == dtx.OpCompensate {
			delta = req.Qty
		}
		err := b.Do(ctx, db, br, func(tx *sql.Tx) error {
			var qty int
			if err := tx.QueryRowContext(ctx, `SELECT qty FROM stock WHERE item = 'apple'`).Scan(&qty); err != nil {
				return err
			}
			if qty+delta < 0 {
				return dtx.Permanentf("out of stock: %d left", qty)
			}
			_, err := tx.ExecContext(ctx, `UPDATE stock SET qty = qty + ? WHERE item = 'apple'`, delta)
			return err
		})
		return nil, err
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	call := func(gid string, op dtx.Op, qty int) int {
		req, err := http.NewRequest("POST", srv.URL, strings.NewReader(fmt.Sprintf(`{"qty":%d}`, qty)))
		require.NoError(t, err)
		req.Header.Set(dtx.HeaderGID, gid)
		req.Header.Set(dtx.HeaderBranch, "0")
		req.Header.Set(dtx.HeaderOp, string(op))
		req.Header.Set(dtx.HeaderAttempt, "1")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	stock := func() int {
		var q int
		require.NoError(t, db.QueryRow(`SELECT qty FROM stock`).Scan(&q))
		return q
	}

	require.Equal(t, 200, call("a", dtx.OpAction, 2))
	require.Equal(t, 200, call("a", dtx.OpAction, 2)) // duplicate
	require.Equal(t, 1, stock())
	require.Equal(t, 409, call("b", dtx.OpAction, 2)) // business refusal
	require.Equal(t, 1, stock())
	require.Equal(t, 200, call("b", dtx.OpCompensate, 2)) // null compensation
	require.Equal(t, 1, stock())
	require.Equal(t, 200, call("a", dtx.OpCompensate, 2))
	require.Equal(t, 200, call("a", dtx.OpCompensate, 2)) // duplicate
	require.Equal(t, 3, stock())
	require.Equal(t, 200, call("c", dtx.OpCompensate, 1)) // null compensation...
	require.Equal(t, 409, call("c", dtx.OpAction, 1))     // ...then hanging action
	require.Equal(t, 3, stock())
}
