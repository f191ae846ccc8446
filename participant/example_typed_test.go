package participant_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/participant"
)

// The types below have the shape sqlc generates from
//
//	-- name: ReserveStock :one
//	UPDATE stock SET qty = qty - ?2 WHERE item = ?1 AND qty >= ?2 RETURNING qty;
//
// (sqlc's database/sql output): a typed handler hands its *sql.Tx to
// Queries.WithTx, so the generated queries run in the barrier's
// transaction.

// DBTX is sqlc's interface over *sql.DB and *sql.Tx.
type DBTX interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// Queries runs the generated queries on a DBTX.
type Queries struct{ db DBTX }

// NewQueries is sqlc's New.
func NewQueries(db DBTX) *Queries { return &Queries{db: db} }

// WithTx returns the queries bound to tx.
func (q *Queries) WithTx(tx *sql.Tx) *Queries { return &Queries{db: tx} }

const reserveStock = `UPDATE stock SET qty = qty - ?2 WHERE item = ?1 AND qty >= ?2 RETURNING qty`

// ReserveStockParams are ReserveStock's arguments.
type ReserveStockParams struct {
	Item string
	Qty  int64
}

// ReserveStock takes qty of item if there are that many, and returns what
// is left (sql.ErrNoRows if there are not enough).
func (q *Queries) ReserveStock(ctx context.Context, arg ReserveStockParams) (int64, error) {
	var left int64
	err := q.db.QueryRowContext(ctx, reserveStock, arg.Item, arg.Qty).Scan(&left)
	return left, err
}

// ReserveRequest is the body of a reserve call.
type ReserveRequest struct {
	Item string `json:"item"`
	Qty  int64  `json:"qty"`
}

// Validate refuses a request that cannot be right (answered 400).
func (r ReserveRequest) Validate() error {
	if r.Item == "" || r.Qty <= 0 {
		return errors.New("want an item and a positive qty")
	}
	return nil
}

// ReserveResponse is the answer to a reserve call.
type ReserveResponse struct {
	Left int64 `json:"left"`
}

// Serve a typed branch operation: HandleJSON decodes the body into a
// ReserveRequest (a body that does not decode or validate is answered 400,
// a definite failure), runs the function in the barrier's transaction,
// encodes its ReserveResponse, and answers dtx.Permanent with 409 (the
// coordinator compensates) and other errors with 500 (it retries).
func ExampleHandleJSON() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "dtx-example")
	defer os.RemoveAll(dir)
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "inventory.db"), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL);
		INSERT INTO stock VALUES ('apple', 3)`)
	if err != nil {
		fmt.Println(err)
		return
	}

	// readme:typed-handler
	barrier := participant.Barrier{} // SQLite; appdb.Postgres or appdb.MySQL otherwise
	if err := barrier.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	queries := NewQueries(db) // sqlc-generated

	reserve := func(ctx context.Context, tx *sql.Tx, req ReserveRequest) (ReserveResponse, error) {
		left, err := queries.WithTx(tx).ReserveStock(ctx, ReserveStockParams{Item: req.Item, Qty: req.Qty})
		if errors.Is(err, sql.ErrNoRows) {
			return ReserveResponse{}, dtx.Permanentf("not enough %s", req.Item) // 409: compensate
		}
		return ReserveResponse{Left: left}, err // another error: 500, retried
	}

	mux := http.NewServeMux()
	mux.Handle("POST /reserve", participant.HandleJSON(db, barrier, reserve))
	// The same function answers saga-async commands from a broker topic:
	//   brokertransport.Serve(ctx, b, "inventory-reserve", "inventory", participant.Typed(db, barrier, reserve))
	// readme:end

	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(gid, body string) {
		req, _ := http.NewRequest("POST", srv.URL+"/reserve", strings.NewReader(body))
		req.Header.Set(dtx.HeaderGID, gid)
		req.Header.Set(dtx.HeaderBranch, "0")
		req.Header.Set(dtx.HeaderOp, "action")
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, strings.TrimSpace(string(out)))
		} else {
			fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	call("order-1", `{"item":"apple","qty":2}`) // runs
	call("order-1", `{"item":"apple","qty":2}`) // a duplicate delivery: absorbed by the barrier
	call("order-2", `{"item":"apple","qty":2}`) // only 1 left: refused
	call("order-3", `{"item":"apple","qty":"2"}`)
	// Output:
	// 200 {"left":1}
	// 200 {}
	// 409 application/problem+json
	// 400 application/problem+json
}
