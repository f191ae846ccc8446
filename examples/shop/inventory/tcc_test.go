package inventory_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/inventory"
)

// tcc calls a TCC endpoint the way the coordinator does: the try and its
// cancel share branch 1, the confirm has its own branch.
func (f *fixture) tcc(t *testing.T, gid string, op dtx.Op, payload string) (int, string) {
	t.Helper()
	path, branch := inventory.PathReserve, 1
	switch op {
	case dtx.OpConfirm:
		path, branch = inventory.PathReserveConfirm, 4
	case dtx.OpCancel:
		path = inventory.PathReserveCancel
	}
	return shoptest.Call(t, f.url+path, gid, branch, op, payload)
}

// requireCounts checks all three counters and the invariant.
func (f *fixture) requireCounts(t *testing.T, id, available, reserved, sold int64) {
	t.Helper()
	p := f.product(t, id)
	assert.Equal(t, [3]int64{available, reserved, sold}, [3]int64{p.Available, p.Reserved, p.Sold}, "product %d available/reserved/sold", id)
	assert.Equal(t, p.Initial, p.Available+p.Reserved+p.Sold, "product %d invariant", id)
}

func (f *fixture) statuses(t *testing.T, orderID int64) map[int64]string {
	t.Helper()
	rs, err := f.svc.Reservations(context.Background(), orderID)
	require.NoError(t, err)
	out := map[int64]string{}
	for _, r := range rs {
		out[r.ProductID] = r.Status
	}
	return out
}

func TestReserve(t *testing.T) {
	t.Run("TryConfirm", func(t *testing.T) {
		f := newFixture(t)
		for range 2 {
			code, body := f.tcc(t, "g", dtx.OpTry, order7)
			require.Equal(t, http.StatusOK, code, body)
			assert.JSONEq(t, `{"order_id":7,"total":450}`, body)
		}
		f.requireCounts(t, 1, 8, 2, 0)
		f.requireCounts(t, 2, 2, 1, 0)
		assert.Equal(t, map[int64]string{1: inventory.Reserved, 2: inventory.Reserved}, f.statuses(t, 7))
		for range 2 {
			code, body := f.tcc(t, "g", dtx.OpConfirm, order7)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireCounts(t, 1, 8, 0, 2)
		f.requireCounts(t, 2, 2, 0, 1)
		assert.Equal(t, map[int64]string{1: inventory.Confirmed, 2: inventory.Confirmed}, f.statuses(t, 7))
		code, _ := f.tcc(t, "g", dtx.OpCancel, order7)
		assert.Equal(t, http.StatusConflict, code, "a confirmed reservation is never cancelled")
		f.requireCounts(t, 1, 8, 0, 2)
	})

	t.Run("TryCancel", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.tcc(t, "g", dtx.OpTry, order7)
		require.Equal(t, http.StatusOK, code, body)
		for range 2 {
			// Keyed by order id: the payload's items are not trusted.
			code, body = f.tcc(t, "g", dtx.OpCancel, `{"order_id":7,"items":[{"product_id":1,"quantity":9}]}`)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireCounts(t, 1, 10, 0, 0)
		f.requireCounts(t, 2, 3, 0, 0)
		assert.Equal(t, map[int64]string{1: inventory.Cancelled, 2: inventory.Cancelled}, f.statuses(t, 7))
		code, _ = f.tcc(t, "g", dtx.OpConfirm, order7)
		assert.Equal(t, http.StatusConflict, code, "a cancelled reservation is never confirmed")
		f.requireCounts(t, 1, 10, 0, 0)
	})

	t.Run("NullCancelBarsLateTry", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.tcc(t, "g", dtx.OpCancel, order7)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.tcc(t, "g", dtx.OpTry, order7)
		assert.Equal(t, http.StatusConflict, code, "hanging try refused")
		f.requireCounts(t, 1, 10, 0, 0)
		assert.Empty(t, f.statuses(t, 7))
	})

	t.Run("InsufficientStockOrUnknownProduct", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.tcc(t, "g", dtx.OpTry, `{"order_id":8,"items":[{"product_id":1,"quantity":1},{"product_id":2,"quantity":4}]}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "insufficient stock")
		code, _ = f.tcc(t, "h", dtx.OpTry, `{"order_id":9,"items":[{"product_id":42,"quantity":1}]}`)
		assert.Equal(t, http.StatusConflict, code)
		f.requireCounts(t, 1, 10, 0, 0)
		f.requireCounts(t, 2, 3, 0, 0)
		assert.Empty(t, f.statuses(t, 8), "all or nothing")
	})

	t.Run("ConfirmWithoutTryRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.tcc(t, "g", dtx.OpConfirm, order7)
		assert.Equal(t, http.StatusConflict, code)
	})

	t.Run("WrongOpRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := shoptest.Call(t, f.url+inventory.PathReserve, "g", 1, dtx.OpAction, order7)
		assert.Equal(t, http.StatusConflict, code)
		f.requireCounts(t, 1, 10, 0, 0)
	})
}
