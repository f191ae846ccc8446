package pgxbarrier_test

import (
	"context"
	"errors"
	"log"
	"net/http"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/pgxbarrier"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ChargeRequest is the body of a charge call.
type ChargeRequest struct {
	Account string `json:"account"`
	Cents   int64  `json:"cents"`
}

// ChargeResponse answers a charge call.
type ChargeResponse struct {
	Balance int64 `json:"balance"`
}

// A typed branch operation on pgx: the handler gets the barrier's pgx.Tx
// (where sqlc's pgx/v5 output would take Queries.WithTx(tx)); the SDK
// decodes the body (400 if it does not decode), runs the barrier, encodes
// the response and answers dtx.Permanent with 409.
func ExampleTyped() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/payments")
	if err != nil {
		log.Fatal(err)
	}
	barrier := participant.Barrier{}
	if err := pgxbarrier.Migrate(ctx, pool, barrier); err != nil {
		log.Fatal(err)
	}
	charge := func(ctx context.Context, tx pgx.Tx, req ChargeRequest) (ChargeResponse, error) {
		var balance int64
		err := tx.QueryRow(ctx, `UPDATE accounts SET balance = balance - $2
			WHERE id = $1 AND balance >= $2 RETURNING balance`, req.Account, req.Cents).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return ChargeResponse{}, dtx.Permanentf("account %s cannot pay %d", req.Account, req.Cents)
		}
		return ChargeResponse{Balance: balance}, err
	}
	http.Handle("POST /charge", participant.Handler(pgxbarrier.Typed(pool, barrier, charge)))
	log.Fatal(http.ListenAndServe("127.0.0.1:8082", nil))
}
