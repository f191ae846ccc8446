package payment_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/payment"
)

type fixture struct {
	svc *payment.Service
	url string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	svc := payment.New(shoptest.MustSQLite(t), payment.Config{Logger: shoptest.Logger()})
	require.NoError(t, svc.Migrate(ctx))
	require.NoError(t, svc.Seed(ctx, []payment.Account{
		{UserID: 1, Balance: 1000},
		{UserID: payment.DeclinedUserID, Balance: 1000},
	}))
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &fixture{svc: svc, url: srv.URL}
}

func (f *fixture) call(t *testing.T, gid string, op dtx.Op, payload string) (int, string) {
	t.Helper()
	path := payment.PathCharge
	if op == dtx.OpCompensate {
		path = payment.PathChargeCancel
	}
	return shoptest.Call(t, f.url+path, gid, 2, op, payload)
}

func (f *fixture) requireAccount(t *testing.T, userID, balance, spent int64) {
	t.Helper()
	accounts, err := f.svc.Accounts(context.Background())
	require.NoError(t, err)
	for _, a := range accounts {
		if a.UserID == userID {
			assert.Equal(t, balance, a.Balance, "user %d balance", userID)
			assert.Equal(t, spent, a.Spent, "user %d spent", userID)
			assert.Equal(t, a.Initial, a.Balance+a.Reserved+a.Spent, "user %d invariant", userID)
			return
		}
	}
	t.Fatalf("no account %d", userID)
}

func (f *fixture) status(t *testing.T, orderID int64) string {
	t.Helper()
	p, err := f.svc.Payment(context.Background(), orderID)
	if err != nil {
		require.ErrorIs(t, err, sql.ErrNoRows)
		return ""
	}
	return p.Status
}

const charge7 = `{"order_id":7,"user_id":1,"amount":300}`

func TestCharge(t *testing.T) {
	t.Run("ChargesOnce", func(t *testing.T) {
		f := newFixture(t)
		for range 3 {
			code, body := f.call(t, "g1", dtx.OpAction, charge7)
			require.Equal(t, http.StatusOK, code, body)
			assert.Contains(t, body, `"status":"CHARGED"`)
		}
		f.requireAccount(t, 1, 700, 300)
		assert.Equal(t, payment.Charged, f.status(t, 7))
	})

	t.Run("DeclinedUserIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.call(t, "g1", dtx.OpAction, `{"order_id":7,"user_id":2,"amount":300}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "declined")
		f.requireAccount(t, 2, 1000, 0)
		assert.Equal(t, payment.Declined, f.status(t, 7), "the refusal is kept as history")
		// Its compensation refunds nothing.
		code, _ = f.call(t, "g1", dtx.OpCompensate, `{"order_id":7,"user_id":2,"amount":300}`)
		assert.Equal(t, http.StatusOK, code)
		f.requireAccount(t, 2, 1000, 0)
		assert.Equal(t, payment.Declined, f.status(t, 7))
	})

	t.Run("InsufficientBalanceIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.call(t, "g1", dtx.OpAction, `{"order_id":7,"user_id":1,"amount":1001}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "insufficient balance")
		f.requireAccount(t, 1, 1000, 0)
		// A retry that can pay replaces the DECLINED record.
		code, _ = f.call(t, "g1", dtx.OpAction, `{"order_id":7,"user_id":1,"amount":1000}`)
		require.Equal(t, http.StatusOK, code)
		f.requireAccount(t, 1, 0, 1000)
		assert.Equal(t, payment.Charged, f.status(t, 7))
	})

	t.Run("UnknownAccountIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.call(t, "g1", dtx.OpAction, `{"order_id":7,"user_id":42,"amount":1}`)
		assert.Equal(t, http.StatusConflict, code)
	})

	t.Run("SameOrderUnderAnotherGIDIsRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.call(t, "g1", dtx.OpAction, charge7)
		require.Equal(t, http.StatusOK, code)
		code, body := f.call(t, "g2", dtx.OpAction, charge7)
		assert.Equal(t, http.StatusConflict, code, body)
		f.requireAccount(t, 1, 700, 300)
	})
}

func TestRefund(t *testing.T) {
	t.Run("RefundsOnce", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.call(t, "g1", dtx.OpAction, charge7)
		require.Equal(t, http.StatusOK, code)
		for range 2 {
			code, body := f.call(t, "g1", dtx.OpCompensate, charge7)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireAccount(t, 1, 1000, 0)
		assert.Equal(t, payment.Refunded, f.status(t, 7))
	})

	t.Run("RefundsThePaymentNotThePayload", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.call(t, "g1", dtx.OpAction, charge7)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.call(t, "g1", dtx.OpCompensate, `{"order_id":7,"user_id":1,"amount":999}`)
		require.Equal(t, http.StatusOK, code)
		f.requireAccount(t, 1, 1000, 0)
	})

	t.Run("NullCompensationThenHangingAction", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.call(t, "g1", dtx.OpCompensate, charge7)
		require.Equal(t, http.StatusOK, code)
		code, body := f.call(t, "g1", dtx.OpAction, charge7)
		assert.Equal(t, http.StatusConflict, code, body)
		f.requireAccount(t, 1, 1000, 0)
		assert.Empty(t, f.status(t, 7))
	})
}

func TestAccountsAndPayments(t *testing.T) {
	f := newFixture(t)
	code, body := shoptest.Get(t, f.url+payment.PathAccounts)
	require.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `[{"user_id":1,"balance":1000,"reserved":0,"spent":0,"initial":1000},
		{"user_id":2,"balance":1000,"reserved":0,"spent":0,"initial":1000}]`, body)
	code, _ = shoptest.Get(t, f.url+payment.PathPayments+"/7")
	assert.Equal(t, http.StatusNotFound, code)
	f.call(t, "g1", dtx.OpAction, charge7)
	code, body = shoptest.Get(t, f.url+payment.PathPayments+"/7")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"order_id":7,"user_id":1,"amount":300,"status":"CHARGED"}`, body)
}
