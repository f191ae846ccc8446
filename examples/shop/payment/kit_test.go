package payment_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/dtxtest"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/participant/sqlitedb"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// TestPaymentUnderFaults runs the payment service (with the inventory
// service beside it, so that orders can fail after the payment) through
// the test kit: every delivery anomaly, a coordinator crash at every
// durable write, and a seeded storm, for sagas and TCC transactions that
// succeed and that fail on either side. After each one the money of the
// order must be spent exactly once if the order went through, and not at
// all if it did not.
func TestPaymentUnderFaults(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *sql.DB {
		db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), name+".db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	}
	pay := payment.New(open("payment"), payment.Config{})
	require.NoError(t, pay.Migrate(ctx))
	// Enough money and stock that no scenario runs short because of the
	// ones before it: an outcome then depends on the case alone.
	const price, plenty = 300, 1_000_000_000
	require.NoError(t, pay.Seed(ctx, []payment.Account{
		{UserID: 1, Balance: plenty, Initial: plenty},
		{UserID: payment.DeclinedUserID, Balance: plenty, Initial: plenty},
	}))
	inv := inventory.New(open("inventory"), inventory.Config{})
	require.NoError(t, inv.Migrate(ctx))
	require.NoError(t, inv.Seed(ctx, []inventory.Product{
		{ID: 1, Name: "widget", Price: price, Available: plenty, Initial: plenty},
		{ID: 2, Name: "rare", Price: price, Available: 0, Initial: 0},
	}))

	charge := func(in dtxtest.Instance, user int64) payment.ChargeRequest {
		return payment.ChargeRequest{OrderID: in.N, UserID: user, Amount: price}
	}
	deduct := func(in dtxtest.Instance, product int64) inventory.DeductRequest {
		return inventory.DeductRequest{OrderID: in.N, Items: []inventory.Item{{ProductID: product, Quantity: 1}}}
	}
	// stockThenPay: the inventory step, then the payment step.
	stockThenPay := func(user int64) func(dtxtest.Instance) (dtxtest.Transaction, error) {
		return func(in dtxtest.Instance) (dtxtest.Transaction, error) {
			inv, pay := in.URL("inventory"), in.URL("payment")
			return dtxtest.Saga(saga.New(in.GID).
				Step("inventory", inv+inventory.PathDeduct, inv+inventory.PathDeductCancel, saga.Payload(deduct(in, 1))).
				Step("payment", pay+payment.PathCharge, pay+payment.PathChargeCancel, saga.Payload(charge(in, user))).
				Build())
		}
	}
	// payThenStock: the payment first, so that a refused deduct makes the
	// payment's compensation run.
	payThenStock := func(in dtxtest.Instance) (dtxtest.Transaction, error) {
		inv, pay := in.URL("inventory"), in.URL("payment")
		return dtxtest.Saga(saga.New(in.GID).
			Step("payment", pay+payment.PathCharge, pay+payment.PathChargeCancel, saga.Payload(charge(in, 1))).
			Step("inventory", inv+inventory.PathDeduct, inv+inventory.PathDeductCancel, saga.Payload(deduct(in, 2))).
			Build())
	}
	tccOrder := func(product int64) func(dtxtest.Instance) (dtxtest.Transaction, error) {
		return func(in dtxtest.Instance) (dtxtest.Transaction, error) {
			inv, pay := in.URL("inventory"), in.URL("payment")
			return dtxtest.TCC(tcc.New(in.GID).
				Participant("payment", pay+payment.PathReserve, pay+payment.PathReserveConfirm, pay+payment.PathReserveCancel,
					saga.Payload(charge(in, 1))).
				Participant("inventory", inv+inventory.PathReserve, inv+inventory.PathReserveConfirm, inv+inventory.PathReserveCancel,
					saga.Payload(deduct(in, product))).
				Build())
		}
	}

	// check: the order's money was spent once if it went through, else
	// none is spent or held; and every account still adds up.
	check := func(ctx context.Context, r dtxtest.Result) error {
		p, err := pay.Payment(ctx, r.N)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			p = payment.Payment{Status: "none"}
		case err != nil:
			return err
		}
		spent := p.Status == payment.Charged
		if spent != (r.Status == dtx.StatusSucceeded) {
			return fmt.Errorf("order %d: payment %s after the transaction %s", r.N, p.Status, r.Status)
		}
		if r.Status.Terminal() && p.Status == payment.Reserved {
			return fmt.Errorf("order %d: money still held after the transaction %s", r.N, r.Status)
		}
		accounts, err := pay.Accounts(ctx)
		if err != nil {
			return err
		}
		for _, a := range accounts {
			if a.Balance+a.Reserved+a.Spent != a.Initial || a.Balance < 0 || a.Reserved < 0 {
				return fmt.Errorf("account of user %d does not add up: %+v", a.UserID, a)
			}
		}
		return nil
	}

	rep := dtxtest.Run(t, dtxtest.Config{
		Services: map[string]http.Handler{"payment": pay.Handler(), "inventory": inv.Handler()},
		Cases: []dtxtest.Case{
			{Name: "saga paid", Build: stockThenPay(1)},
			{Name: "saga declined", Build: stockThenPay(payment.DeclinedUserID)},
			{Name: "saga paid then out of stock", Build: payThenStock},
			{Name: "tcc paid", Build: tccOrder(1)},
			{Name: "tcc out of stock", Build: tccOrder(2)},
		},
		Check: check,
		Seed:  1,
	})
	require.Empty(t, rep.Violations)
	require.Positive(t, rep.Crashes)
}
