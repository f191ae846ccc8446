// Package entwallet is a payment participant whose writes use ent inside
// the dtx barrier's transaction: Debit is a saga action, Refund its
// compensation. Package ent is generated from ent/schema (go generate).
package entwallet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/examples/orm/entwallet/ent"
	"github.com/dtxhq/dtx/examples/orm/entwallet/ent/account"
	"github.com/dtxhq/dtx/examples/orm/entwallet/ent/payment"
	"github.com/dtxhq/dtx/participant"
)

// DebitRequest is the body of Debit and Refund.
type DebitRequest struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Validate refuses a request that cannot be right: answered 400.
func (r DebitRequest) Validate() error {
	if r.Account == "" || r.Amount <= 0 {
		return errors.New("want an account and a positive amount")
	}
	return nil
}

// Balance is the answer of Debit and Refund.
type Balance struct {
	Account string `json:"account"`
	Balance int64  `json:"balance"`
}

// Barrier is the wallet's barrier: PostgreSQL, default table.
var Barrier = participant.Barrier{Dialect: appdb.Postgres}

// client returns an ent client whose every statement runs on the
// barrier's open transaction tx: an ent SQL driver over tx (entsql.Conn
// takes any ExecQuerier, and *sql.Tx is one), wrapped by txDriver.
func client(tx *sql.Tx) *ent.Client {
	return ent.NewClient(ent.Driver(txDriver{entsql.NewDriver(dialect.Postgres, entsql.Conn{ExecQuerier: tx})}))
}

// txDriver is an ent driver already inside a transaction, the barrier's.
// ent opens a transaction of its own around some writes (UpdateOne, edges);
// here that is the open one, with the no-op Commit and Rollback of
// dialect.NopTx, since the barrier commits the business writes together
// with its row, or rolls both back when the handler returns an error.
type txDriver struct{ *entsql.Driver }

// Tx returns the open transaction.
func (d txDriver) Tx(context.Context) (dialect.Tx, error) { return dialect.NopTx(d), nil }

// BeginTx returns the open transaction; opts cannot apply to it.
func (d txDriver) BeginTx(context.Context, *sql.TxOptions) (dialect.Tx, error) {
	return dialect.NopTx(d), nil
}

// Migrate creates the barrier table and the wallet's tables.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := Barrier.Migrate(ctx, db); err != nil {
		return err
	}
	return ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db))).Schema.Create(ctx)
}

// Debit takes req.Amount from the account and records the payment under
// the transaction's gid. Too little money is a business "no"
// (dtx.Permanent: the coordinator compensates the steps before it).
func Debit(ctx context.Context, tx *sql.Tx, req DebitRequest) (Balance, error) {
	br, _ := participant.BranchFromContext(ctx)
	c := client(tx)
	n, err := c.Account.Update().
		Where(account.ID(req.Account), account.BalanceGTE(req.Amount)).
		AddBalance(-req.Amount).
		Save(ctx)
	if err != nil {
		return Balance{}, err
	}
	if n == 0 {
		return Balance{}, dtx.Permanentf("account %s cannot pay %d", req.Account, req.Amount)
	}
	_, err = c.Payment.Create().SetGid(br.GID).SetAccount(req.Account).SetAmount(req.Amount).Save(ctx)
	if err != nil {
		return Balance{}, err
	}
	return balance(ctx, c, req.Account)
}

// Refund undoes Debit: it gives back the payment of the transaction's gid.
// The barrier calls it only if Debit committed, so the payment is there.
func Refund(ctx context.Context, tx *sql.Tx, req DebitRequest) (Balance, error) {
	br, _ := participant.BranchFromContext(ctx)
	c := client(tx)
	p, err := c.Payment.Query().Where(payment.Gid(br.GID)).Only(ctx)
	if err != nil {
		return Balance{}, fmt.Errorf("refund %s: %w", br.GID, err)
	}
	if err := p.Update().SetRefunded(true).Exec(ctx); err != nil {
		return Balance{}, err
	}
	if err := c.Account.UpdateOneID(p.Account).AddBalance(p.Amount).Exec(ctx); err != nil {
		return Balance{}, err
	}
	return balance(ctx, c, p.Account)
}

func balance(ctx context.Context, c *ent.Client, id string) (Balance, error) {
	a, err := c.Account.Get(ctx, id)
	if err != nil {
		return Balance{}, err
	}
	return Balance{Account: a.ID, Balance: a.Balance}, nil
}
