// Command quickstart is the README's "Use it from Go": two services
// (stock and wallet), each with its own SQLite database and a barrier, a
// coordinator embedded in the same process, one saga that succeeds and one
// that the wallet refuses, so the stock taken by its first step is given
// back.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/embed"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/sqlitedb"
	"github.com/dtxhq/dtx/saga"
)

func main() {
	dir, err := os.MkdirTemp("", "dtx-quickstart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), os.Stdout, dir); err != nil {
		log.Fatal(err)
	}
}

// run starts everything with its databases in dir, runs two sagas and
// prints what happened to out.
func run(ctx context.Context, out io.Writer, dir string) error {
	// The coordinator, embedded: its own SQLite store, its API in process.
	dc, err := embed.Open(ctx, embed.Config{Store: "sqlite://" + filepath.Join(dir, "dtx.db")})
	if err != nil {
		return err
	}
	defer dc.Close(context.Background())

	// Two participant services, each on its own database and port.
	stock, err := startService(ctx, filepath.Join(dir, "stock.db"), 10)
	if err != nil {
		return err
	}
	defer stock.Close()
	wallet, err := startService(ctx, filepath.Join(dir, "wallet.db"), 100)
	if err != nil {
		return err
	}
	defer wallet.Close()

	c := dc.Client()
	for _, o := range []struct {
		gid         string
		items, cost int
	}{{"order-1", 2, 30}, {"order-2", 1, 500}} {
		spec, err := saga.New(o.gid).
			Step("take-stock", stock.URL+"/take", stock.URL+"/give-back", saga.Payload(amount{o.items})).
			Step("charge", wallet.URL+"/take", wallet.URL+"/give-back", saga.Payload(amount{o.cost})).
			Build()
		if err != nil {
			return err
		}
		if _, err := c.StartSaga(ctx, spec); err != nil {
			return err
		}
		tx, err := c.Wait(ctx, o.gid)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s\n", o.gid, tx.Status)
	}
	fmt.Fprintf(out, "stock left: %d, wallet left: %d\n", stock.balance(ctx), wallet.balance(ctx))
	return nil
}

// amount is the body of every branch call.
type amount struct {
	Amount int `json:"amount"`
}

// service is a participant: one balance in its own database, taken by the
// action and given back by the compensation, each behind the barrier.
type service struct {
	URL     string
	db      *sql.DB
	srv     *http.Server
	barrier participant.Barrier // the zero Barrier: SQLite, table dtx_barrier
}

func startService(ctx context.Context, path string, initial int) (*service, error) {
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	s := &service{db: db}
	if err := s.barrier.Migrate(ctx, db); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE balance (amount INTEGER NOT NULL CHECK (amount >= 0))`); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO balance VALUES (?)`, initial); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /take", participant.Handler(s.change(-1)))
	mux.Handle("POST /give-back", participant.Handler(s.change(+1)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

// change adds sign × the call's amount to the balance, once per branch
// operation whatever the retries; a balance that would go below zero is a
// definite "no" (dtx.Permanent: answered 409, the saga compensates).
func (s *service) change(sign int) participant.BranchFunc {
	return func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		var a amount
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, dtx.Permanent(err)
		}
		return nil, s.barrier.Do(ctx, s.db, br, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE balance SET amount = amount + ? WHERE amount + ? >= 0`, sign*a.Amount, sign*a.Amount)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return dtx.Permanent(errors.New("not enough left"))
			}
			return nil
		})
	}
}

func (s *service) balance(ctx context.Context) (n int) {
	s.db.QueryRowContext(ctx, `SELECT amount FROM balance`).Scan(&n)
	return n
}

func (s *service) Close() {
	s.srv.Close()
	s.db.Close()
}
