package inventory_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/inventory"
)

type fixture struct {
	svc *inventory.Service
	url string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	svc := inventory.New(shoptest.MustSQLite(t), inventory.Config{Logger: shoptest.Logger()})
	require.NoError(t, svc.Migrate(ctx))
	require.NoError(t, svc.Migrate(ctx), "migrate is repeatable")
	require.NoError(t, svc.Seed(ctx, []inventory.Product{
		{ID: 1, Name: "Widget", Price: 100, Available: 10},
		{ID: 2, Name: "Gadget", Price: 250, Available: 3},
	}))
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &fixture{svc: svc, url: srv.URL}
}

func (f *fixture) deduct(t *testing.T, gid string, op dtx.Op, payload string) (int, string) {
	t.Helper()
	path := inventory.PathDeduct
	if op == dtx.OpCompensate {
		path = inventory.PathDeductCancel
	}
	return shoptest.Call(t, f.url+path, gid, 1, op, payload)
}

func (f *fixture) product(t *testing.T, id int64) inventory.Product {
	t.Helper()
	p, err := f.svc.Product(context.Background(), id)
	require.NoError(t, err)
	return p
}

// requireStock checks available and sold, and the stock invariant.
func (f *fixture) requireStock(t *testing.T, id, available, sold int64) {
	t.Helper()
	p := f.product(t, id)
	assert.Equal(t, available, p.Available, "product %d available", id)
	assert.Equal(t, sold, p.Sold, "product %d sold", id)
	assert.Equal(t, p.Initial, p.Available+p.Reserved+p.Sold, "product %d invariant", id)
}

const order7 = `{"order_id":7,"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}]}`

func TestDeduct(t *testing.T) {
	t.Run("DeductsAndReturnsTotal", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.deduct(t, "g1", dtx.OpAction, order7)
		require.Equal(t, http.StatusOK, code, body)
		var res inventory.DeductResult
		require.NoError(t, json.Unmarshal([]byte(body), &res))
		assert.Equal(t, int64(2*100+250), res.Total)
		f.requireStock(t, 1, 8, 2)
		f.requireStock(t, 2, 2, 1)
	})

	t.Run("DuplicateAppliesOnce", func(t *testing.T) {
		f := newFixture(t)
		for range 3 {
			code, body := f.deduct(t, "g1", dtx.OpAction, order7)
			require.Equal(t, http.StatusOK, code, body)
			assert.JSONEq(t, `{"order_id":7,"total":450}`, body)
		}
		f.requireStock(t, 1, 8, 2)
	})

	t.Run("ConcurrentDuplicatesApplyOnce", func(t *testing.T) {
		f := newFixture(t)
		var wg sync.WaitGroup
		codes, errs := make([]int, 8), make([]error, 8)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _, errs[i] = shoptest.TryCall(f.url+inventory.PathDeduct, "g1", 1, dtx.OpAction, order7)
			}()
		}
		wg.Wait()
		for i := range codes {
			require.NoError(t, errs[i])
			assert.Equal(t, http.StatusOK, codes[i])
		}
		f.requireStock(t, 1, 8, 2)
		f.requireStock(t, 2, 2, 1)
	})

	t.Run("InsufficientStockIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.deduct(t, "g1", dtx.OpAction, `{"order_id":7,"items":[{"product_id":1,"quantity":1},{"product_id":2,"quantity":4}]}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "insufficient stock for product 2")
		// The whole local transaction rolled back, product 1 included.
		f.requireStock(t, 1, 10, 0)
		f.requireStock(t, 2, 3, 0)
		// A refused action leaves no barrier row: a later retry may run.
		code, _ = f.deduct(t, "g1", dtx.OpAction, `{"order_id":7,"items":[{"product_id":2,"quantity":3}]}`)
		assert.Equal(t, http.StatusOK, code)
	})

	t.Run("UnknownProductIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.deduct(t, "g1", dtx.OpAction, `{"order_id":7,"items":[{"product_id":99,"quantity":1}]}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "unknown product 99")
	})

	t.Run("StalePriceIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		code, body := f.deduct(t, "g1", dtx.OpAction, `{"order_id":7,"items":[{"product_id":1,"quantity":1,"price":90}]}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, body, "costs 100")
		f.requireStock(t, 1, 10, 0)
	})

	t.Run("MalformedPayloadIsDefiniteFailure", func(t *testing.T) {
		f := newFixture(t)
		for _, p := range []string{`nope`, `{"items":[{"product_id":1,"quantity":1}]}`, `{"order_id":7,"items":[]}`, `{"order_id":7,"items":[{"product_id":1,"quantity":0}]}`} {
			code, _ := f.deduct(t, "g1", dtx.OpAction, p)
			assert.Equal(t, http.StatusConflict, code, p)
		}
	})

	t.Run("SameOrderUnderAnotherGIDIsRefused", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.deduct(t, "g1", dtx.OpAction, order7)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.deduct(t, "g2", dtx.OpAction, order7)
		assert.Equal(t, http.StatusConflict, code)
		f.requireStock(t, 1, 8, 2)
	})

	t.Run("MissingHeadersIs400", func(t *testing.T) {
		f := newFixture(t)
		resp, err := http.Post(f.url+inventory.PathDeduct, "application/json", nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

func TestCancel(t *testing.T) {
	t.Run("RestoresAndIsIdempotent", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.deduct(t, "g1", dtx.OpAction, order7)
		require.Equal(t, http.StatusOK, code)
		for range 2 {
			code, body := f.deduct(t, "g1", dtx.OpCompensate, order7)
			require.Equal(t, http.StatusOK, code, body)
		}
		f.requireStock(t, 1, 10, 0)
		f.requireStock(t, 2, 3, 0)
	})

	t.Run("RestoresFromLedgerNotPayload", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.deduct(t, "g1", dtx.OpAction, order7)
		require.Equal(t, http.StatusOK, code)
		// A compensation payload that disagrees with what was deducted
		// (seed defect #4) must not matter.
		code, _ = f.deduct(t, "g1", dtx.OpCompensate, `{"order_id":7,"items":[{"product_id":1,"quantity":9}]}`)
		require.Equal(t, http.StatusOK, code)
		f.requireStock(t, 1, 10, 0)
		f.requireStock(t, 2, 3, 0)
	})

	t.Run("NullCompensationThenHangingAction", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.deduct(t, "g1", dtx.OpCompensate, order7)
		require.Equal(t, http.StatusOK, code)
		f.requireStock(t, 1, 10, 0)
		code, body := f.deduct(t, "g1", dtx.OpAction, order7)
		assert.Equal(t, http.StatusConflict, code, "the late action must be refused")
		assert.Contains(t, body, "hanging")
		f.requireStock(t, 1, 10, 0)
		f.requireStock(t, 2, 3, 0)
	})

	t.Run("AfterFailedActionIsNoop", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.deduct(t, "g1", dtx.OpAction, `{"order_id":7,"items":[{"product_id":2,"quantity":99}]}`)
		require.Equal(t, http.StatusConflict, code)
		code, _ = f.deduct(t, "g1", dtx.OpCompensate, `{"order_id":7,"items":[{"product_id":2,"quantity":99}]}`)
		require.Equal(t, http.StatusOK, code)
		f.requireStock(t, 2, 3, 0)
	})
}

func TestProducts(t *testing.T) {
	f := newFixture(t)
	code, body := shoptest.Get(t, f.url+inventory.PathProducts)
	require.Equal(t, http.StatusOK, code)
	var ps []inventory.Product
	require.NoError(t, json.Unmarshal([]byte(body), &ps))
	require.Len(t, ps, 2)
	assert.Equal(t, inventory.Product{ID: 1, Name: "Widget", Price: 100, Available: 10, Initial: 10}, ps[0])

	code, body = shoptest.Get(t, f.url+inventory.PathProducts+"/2")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"name":"Gadget"`)

	code, _ = shoptest.Get(t, f.url+inventory.PathProducts+"/3")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = shoptest.Get(t, f.url+inventory.PathProducts+"/x")
	assert.Equal(t, http.StatusBadRequest, code)
}

func TestSeed_OnlyWhenEmpty(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.svc.Seed(context.Background(), []inventory.Product{{ID: 9, Name: "Other", Price: 1, Available: 1}}))
	ps, err := f.svc.Products(context.Background())
	require.NoError(t, err)
	assert.Len(t, ps, 2)
}
