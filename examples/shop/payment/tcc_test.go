package payment_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/payment"
)

// tcc calls a TCC endpoint the way the coordinator does: the try and its
// cancel share branch 2, the confirm has its own branch.
func (f *fixture) tcc(t *testing.T, gid string, op dtx.Op, payload string) (int, string) {
	t.Helper()
	path, branch := payment.PathReserve, 2
	switch op {
	case dtx.OpConfirm:
		path, branch = payment.PathReserveConfirm, 5
	case dtx.OpCancel:
		path = payment.PathReserveCancel
	}
	return shoptest.Call(t, f.url+path, gid, branch, op, payload)
}

func (f *fixture) reserved(t *testing.T, userID int64) int64 {
	t.Helper()
	accounts, err := f.svc.Accounts(context.Background())
	require.NoError(t, err)
	for _, a := range accounts {
		if a.UserID == userID {
			return a.Reserved
		}
	}
	t.Fatalf("no account %d", userID)
	return 0
}

const hold300 = `{"order_id":7,"user_id":1,"amount":300}`

func TestReserve(t *testing.T) {
	t.Run("TryConfirm", func(t *testing.T) {
		f := newFixture(t)
		for range 2 {
			code, body := f.tcc(t, "g", dtx.OpTry, hold300)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireAccount(t, 1, 700, 0)
		assert.Equal(t, int64(300), f.reserved(t, 1))
		assert.Equal(t, payment.Reserved, f.status(t, 7))
		for range 2 {
			code, body := f.tcc(t, "g", dtx.OpConfirm, hold300)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireAccount(t, 1, 700, 300)
		assert.Zero(t, f.reserved(t, 1))
		assert.Equal(t, payment.Charged, f.status(t, 7))
		// Guard: a confirmed payment is never cancelled.
		code, _ := f.tcc(t, "g", dtx.OpCancel, hold300)
		assert.Equal(t, http.StatusConflict, code)
		f.requireAccount(t, 1, 700, 300)
	})

	t.Run("TryCancel", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.tcc(t, "g", dtx.OpTry, hold300)
		require.Equal(t, http.StatusOK, code, body)
		// The cancel trusts the stored amount, not its payload.
		for range 2 {
			code, body = f.tcc(t, "g", dtx.OpCancel, `{"order_id":7,"user_id":1,"amount":999}`)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireAccount(t, 1, 1000, 0)
		assert.Zero(t, f.reserved(t, 1))
		assert.Equal(t, payment.Cancelled, f.status(t, 7))
		// Guard: a cancelled payment is never confirmed.
		code, _ = f.tcc(t, "g", dtx.OpConfirm, hold300)
		assert.Equal(t, http.StatusConflict, code)
		f.requireAccount(t, 1, 1000, 0)
	})

	t.Run("NullCancelBarsLateTry", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.tcc(t, "g", dtx.OpCancel, hold300)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.tcc(t, "g", dtx.OpTry, hold300)
		assert.Equal(t, http.StatusConflict, code, "hanging try refused")
		f.requireAccount(t, 1, 1000, 0)
		assert.Zero(t, f.reserved(t, 1))
		assert.Empty(t, f.status(t, 7))
	})

	t.Run("Declined", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.tcc(t, "g", dtx.OpTry, `{"order_id":8,"user_id":2,"amount":10}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "declined")
		assert.Equal(t, payment.Declined, f.status(t, 8))
		code, _ = f.tcc(t, "g", dtx.OpTry, `{"order_id":9,"user_id":1,"amount":1001}`)
		assert.Equal(t, http.StatusConflict, code, "insufficient balance")
		code, _ = f.tcc(t, "g", dtx.OpCancel, `{"order_id":8}`)
		assert.Equal(t, http.StatusOK, code, "cancel of a declined try is a no-op")
		f.requireAccount(t, payment.DeclinedUserID, 1000, 0)
		f.requireAccount(t, 1, 1000, 0)
	})

	t.Run("ConfirmWithoutTryRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.tcc(t, "g", dtx.OpConfirm, hold300)
		assert.Equal(t, http.StatusConflict, code)
	})

	t.Run("WrongOpRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := shoptest.Call(t, f.url+payment.PathReserve, "g", 2, dtx.OpAction, hold300)
		assert.Equal(t, http.StatusConflict, code)
		f.requireAccount(t, 1, 1000, 0)
	})

	t.Run("ConcurrentTriesHoldOnce", func(t *testing.T) {
		f := newFixture(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, err := shoptest.TryCall(f.url+payment.PathReserve, "g", 2, dtx.OpTry, hold300)
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, code)
			}()
		}
		wg.Wait()
		f.requireAccount(t, 1, 700, 0)
		assert.Equal(t, int64(300), f.reserved(t, 1))
	})
}
