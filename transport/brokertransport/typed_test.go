package brokertransport_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

type debitReq struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

type debitResp struct {
	Balance int `json:"balance"`
}

// TestServe_Typed serves typed handlers (participant.Typed on SQLite) for
// broker commands on an embedded NATS and calls them through the
// Transport as the coordinator does: a malformed payload is a definite
// failure (400) that runs nothing, dtx.Permanent a definite failure (409),
// another error an unknown outcome (500) whose retry runs again, and the
// barrier absorbs a duplicate command, a null compensation and the
// hanging action after it.
func TestServe_Typed(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"), 0)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	barrier := participant.Barrier{}
	require.NoError(t, barrier.Migrate(ctx, db))
	_, err = db.ExecContext(ctx, `CREATE TABLE wallet (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO wallet VALUES ('alice', 10)`)
	require.NoError(t, err)

	var runs atomic.Int64
	var failNext atomic.Bool
	move := func(sign int) participant.TxFunc[debitReq, debitResp] {
		return func(ctx context.Context, tx *sql.Tx, req debitReq) (debitResp, error) {
			runs.Add(1)
			var bal int
			if err := tx.QueryRowContext(ctx, `UPDATE wallet SET balance = balance + ? WHERE account = ? RETURNING balance`,
				sign*req.Amount, req.Account).Scan(&bal); err != nil {
				return debitResp{}, err
			}
			if bal < 0 {
				return debitResp{}, dtx.Permanentf("insufficient funds: %d short", -bal)
			}
			if failNext.CompareAndSwap(true, false) {
				return debitResp{}, errors.New("disk is full")
			}
			return debitResp{Balance: bal}, nil
		}
	}
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	serve(t, b, "wallet-debit", participant.Typed(db, barrier, move(-1)))
	serve(t, b, "wallet-refund", participant.Typed(db, barrier, move(+1)))

	send := func(gid, topic string, op dtx.Op, payload string) dtx.Outcome {
		return tr.Call(ctx, dtx.Call{GID: gid, Branch: 1, Op: op, URL: brokertransport.URL(topic),
			Payload: []byte(payload), Attempt: 1, Timeout: callTimeout})
	}
	status := func(out dtx.Outcome) int {
		var se *httptransport.StatusError
		require.ErrorAs(t, out.Err, &se)
		return se.Code
	}
	balance := func() int {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT balance FROM wallet WHERE account = 'alice'`).Scan(&n))
		return n
	}

	out := send("g0", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":"3"}`)
	require.Equal(t, dtx.Failure, out.Class, "a payload that does not decode is a definite failure")
	require.Equal(t, 400, status(out))
	require.Contains(t, out.Err.Error(), "brokertransport_test.debitReq")
	require.Equal(t, int64(0), runs.Load())

	out = send("g1", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":3}`)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.JSONEq(t, `{"balance":7}`, string(out.Body))
	out = send("g1", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":3}`)
	require.Equal(t, dtx.Success, out.Class, "a duplicate command succeeds...")
	require.JSONEq(t, `{}`, string(out.Body))
	require.Equal(t, 7, balance(), "...without running again")

	out = send("g2", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":50}`)
	require.Equal(t, dtx.Failure, out.Class)
	require.Equal(t, 409, status(out))
	require.Contains(t, out.Err.Error(), "insufficient funds: 43 short")
	before := runs.Load()
	out = send("g2", "wallet-refund", dtx.OpCompensate, `{"account":"alice","amount":50}`)
	require.Equal(t, dtx.Success, out.Class, "the refused action's compensation is a null compensation")
	require.Equal(t, before, runs.Load())
	require.Equal(t, 7, balance())

	failNext.Store(true)
	out = send("g3", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":2}`)
	require.Equal(t, dtx.Unknown, out.Class)
	require.Equal(t, 500, status(out))
	require.Equal(t, 7, balance(), "rolled back")
	out = send("g3", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":2}`)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.JSONEq(t, `{"balance":5}`, string(out.Body))

	before = runs.Load()
	out = send("g4", "wallet-refund", dtx.OpCompensate, `{"account":"alice","amount":1}`)
	require.Equal(t, dtx.Success, out.Class)
	out = send("g4", "wallet-debit", dtx.OpAction, `{"account":"alice","amount":1}`)
	require.Equal(t, dtx.Failure, out.Class, "the action after its null compensation is refused")
	require.Equal(t, 409, status(out))
	require.Contains(t, out.Err.Error(), "hanging")
	require.Equal(t, before, runs.Load())
	require.Equal(t, 5, balance())
}
