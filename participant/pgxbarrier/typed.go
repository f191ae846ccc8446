package pgxbarrier

import (
	"context"

	"github.com/dtxhq/dtx/participant"
	"github.com/jackc/pgx/v5"
)

// TxFunc is participant.TxFunc on pgx: a typed branch operation that runs
// in the barrier's open transaction tx (sqlc's pgx/v5 Queries.WithTx(tx)
// fits it).
type TxFunc[Req, Resp any] func(ctx context.Context, tx pgx.Tx, req Req) (Resp, error)

// Typed is participant.Typed on pgx: the returned BranchFunc decodes the
// body into a Req (participant.DecodeRequest: a malformed body is a
// participant.BadRequest, answered 400), runs fn through Do on db (a
// *pgxpool.Pool or *pgx.Conn) behind barrier b, and returns fn's Resp.
// A duplicate delivery or a null compensation does not call fn and is
// answered {}; a hanging action gets participant.ErrHanging. The branch
// is in fn's ctx (participant.BranchFromContext). Serve it with
// participant.Handler or brokertransport.Serve. b.Dialect is ignored.
func Typed[Req, Resp any](db Beginner, b participant.Barrier, fn TxFunc[Req, Resp]) participant.BranchFunc {
	return func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		req, err := participant.DecodeRequest[Req](body)
		if err != nil {
			return nil, err
		}
		ctx = participant.ContextWithBranch(ctx, br)
		var resp Resp
		ran := false
		err = Do(ctx, db, b, br, func(tx pgx.Tx) error {
			ran = true
			var err error
			resp, err = fn(ctx, tx, req)
			return err
		})
		if err != nil || !ran {
			return nil, err
		}
		return resp, nil
	}
}
