package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
)

// fakeCoordinator records submissions and answers with Submit (default:
// accept, still running).
type fakeCoordinator struct {
	mu       sync.Mutex
	specs    []saga.Spec
	tccSpecs []tcc.Spec
	Submit   func(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error)
}

// SubmitXA records spec (tries in order) like SubmitTCC.
func (f *fakeCoordinator) SubmitXA(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	spec.Sequential = true
	return f.SubmitTCC(ctx, spec, wait)
}

// SubmitTCC records spec and answers like SubmitSaga with its saga.
func (f *fakeCoordinator) SubmitTCC(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	sg, err := spec.Saga()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.tccSpecs = append(f.tccSpecs, spec)
	submit := f.Submit
	f.mu.Unlock()
	if submit != nil {
		return submit(ctx, sg, wait)
	}
	return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusRunning}}, nil
}

func (f *fakeCoordinator) submittedTCC() []tcc.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tcc.Spec(nil), f.tccSpecs...)
}

func (f *fakeCoordinator) SubmitSaga(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	submit := f.Submit
	f.mu.Unlock()
	if submit != nil {
		return submit(ctx, spec, wait)
	}
	return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusRunning}}, nil
}

func (f *fakeCoordinator) submitted() []saga.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]saga.Spec(nil), f.specs...)
}

type fixture struct {
	svc   *order.Service
	url   string
	coord *fakeCoordinator
	// priceFetches counts GETs of the price list.
	priceFetches atomic.Int64
}

func newFixture(t *testing.T, tweak ...func(*order.Config)) *fixture {
	t.Helper()
	f := &fixture{coord: &fakeCoordinator{}}
	inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.priceFetches.Add(1)
		fmt.Fprint(w, `[{"id":1,"name":"Widget","price":100},{"id":2,"name":"Gadget","price":250}]`)
	}))
	t.Cleanup(inv.Close)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := order.Config{
		URL:           srv.URL,
		InventoryURL:  inv.URL,
		PaymentURL:    "http://payment.invalid",
		Coordinator:   f.coord,
		SagaTimeout:   30 * time.Second,
		BranchTimeout: 2 * time.Second,
		ResubmitAfter: time.Hour,
		Logger:        shoptest.Logger(),
	}
	for _, fn := range tweak {
		fn(&cfg)
	}
	svc, err := order.New(shoptest.MustSQLite(t), cfg)
	require.NoError(t, err)
	require.NoError(t, svc.Migrate(context.Background()))
	mux.Handle("/", svc.Handler())
	f.svc, f.url = svc, srv.URL
	return f
}

// place posts body to /orders and decodes the order on success.
func (f *fixture) place(t *testing.T, body, key, query string) (int, *order.Order, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+"/orders"+query, bytes.NewBufferString(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set(order.HeaderIdempotencyKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, nil, string(raw)
	}
	var o order.Order
	require.NoError(t, json.Unmarshal(raw, &o), string(raw))
	return resp.StatusCode, &o, string(raw)
}

func (f *fixture) countOrders(t *testing.T) int {
	t.Helper()
	orders, err := f.svc.List(context.Background(), "")
	require.NoError(t, err)
	return len(orders)
}

const twoWidgets = `{"user_id":1,"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}]}`

func TestPlace(t *testing.T) {
	t.Run("StoresPendingAndSubmitsSaga", func(t *testing.T) {
		f := newFixture(t)
		code, o, body := f.place(t, twoWidgets, "", "")
		require.Equal(t, http.StatusCreated, code, body)
		assert.Equal(t, order.Pending, o.Status)
		assert.Equal(t, int64(2*100+250), o.Total)
		assert.Equal(t, order.GID(o.ID), o.GID)
		assert.Equal(t, []order.Item{{ProductID: 1, Quantity: 2, Price: 100}, {ProductID: 2, Quantity: 1, Price: 250}}, o.Items)

		specs := f.coord.submitted()
		require.Len(t, specs, 1)
		spec := specs[0]
		assert.Equal(t, o.GID, spec.GID)
		require.Len(t, spec.Steps, 4)
		assert.Empty(t, spec.Steps[0].Action)
		assert.Equal(t, f.url+order.PathSagaCancel, spec.Steps[0].Compensate)
		assert.Equal(t, "http://payment.invalid/payment/charge", spec.Steps[2].Action)
		assert.JSONEq(t, fmt.Sprintf(`{"order_id":%d,"user_id":1,"amount":450}`, o.ID), string(spec.Steps[2].Payload))
		assert.JSONEq(t, fmt.Sprintf(`{"order_id":%d,"items":[{"product_id":1,"quantity":2,"price":100},{"product_id":2,"quantity":1,"price":250}]}`, o.ID),
			string(spec.Steps[1].Payload))
		assert.Empty(t, spec.Steps[3].Compensate)
		assert.Equal(t, dtx.Duration(2*time.Second), spec.BranchTimeout)
		require.NoError(t, spec.Normalize(), "the coordinator must accept the spec")
	})

	t.Run("TotalNeverComesFromTheClient", func(t *testing.T) {
		f := newFixture(t)
		code, o, body := f.place(t, `{"user_id":1,"items":[{"product_id":1,"quantity":3,"price":1}]}`, "", "")
		require.Equal(t, http.StatusCreated, code, body)
		assert.Equal(t, int64(300), o.Total)
	})

	t.Run("MergesRepeatedProducts", func(t *testing.T) {
		f := newFixture(t)
		code, o, body := f.place(t, `{"user_id":1,"items":[{"product_id":2,"quantity":1},{"product_id":1,"quantity":1},{"product_id":2,"quantity":2}]}`, "", "")
		require.Equal(t, http.StatusCreated, code, body)
		assert.Equal(t, []order.Item{{ProductID: 1, Quantity: 1, Price: 100}, {ProductID: 2, Quantity: 3, Price: 250}}, o.Items)
	})

	t.Run("CachesPrices", func(t *testing.T) {
		f := newFixture(t)
		for range 3 {
			code, _, _ := f.place(t, twoWidgets, "", "")
			require.Equal(t, http.StatusCreated, code)
		}
		assert.Equal(t, int64(1), f.priceFetches.Load())
	})

	t.Run("InvalidInputIs400", func(t *testing.T) {
		f := newFixture(t)
		for name, body := range map[string]string{
			"malformed JSON":  `{"user_id":1,`,
			"not an object":   `[1]`,
			"unknown field":   `{"user_id":1,"items":[{"product_id":1,"quantity":1}],"total":1}`,
			"no items":        `{"user_id":1,"items":[]}`,
			"missing items":   `{"user_id":1}`,
			"zero quantity":   `{"user_id":1,"items":[{"product_id":1,"quantity":0}]}`,
			"negative qty":    `{"user_id":1,"items":[{"product_id":1,"quantity":-2}]}`,
			"huge quantity":   `{"user_id":1,"items":[{"product_id":1,"quantity":1000001}]}`,
			"no user":         `{"items":[{"product_id":1,"quantity":1}]}`,
			"bad product id":  `{"user_id":1,"items":[{"product_id":0,"quantity":1}]}`,
			"unknown product": `{"user_id":1,"items":[{"product_id":3,"quantity":1}]}`,
			"string quantity": `{"user_id":1,"items":[{"product_id":1,"quantity":"2"}]}`,
			"fractional user": `{"user_id":1.5,"items":[{"product_id":1,"quantity":1}]}`,
		} {
			code, _, resp := f.place(t, body, "", "")
			assert.Equal(t, http.StatusBadRequest, code, "%s: %s", name, resp)
			assert.Contains(t, resp, `"status":400`, name)
		}
		code, _, _ := f.place(t, twoWidgets, "", "?wait=maybe")
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Zero(t, f.countOrders(t))
		assert.Empty(t, f.coord.submitted())
	})

	t.Run("InventoryDownIs503", func(t *testing.T) {
		f := newFixture(t, func(c *order.Config) { c.InventoryURL = "http://127.0.0.1:1" })
		code, _, body := f.place(t, twoWidgets, "", "")
		assert.Equal(t, http.StatusServiceUnavailable, code, body)
		assert.Zero(t, f.countOrders(t))
	})

	t.Run("CoordinatorDownIs202ThenResubmitted", func(t *testing.T) {
		f := newFixture(t, func(c *order.Config) { c.ResubmitAfter = time.Millisecond })
		f.coord.Submit = func(context.Context, saga.Spec, bool) (*dtx.TxDetail, error) {
			return nil, errors.New("connection refused")
		}
		code, o, body := f.place(t, twoWidgets, "", "")
		require.Equal(t, http.StatusAccepted, code, body)
		assert.Equal(t, order.Pending, o.Status)

		n, err := f.svc.Resubmit(context.Background())
		require.Error(t, err, "still down")
		assert.Zero(t, n)

		f.coord.Submit = nil // back up
		// Resubmitted once older than ResubmitAfter (1ms).
		n = resubmitWhenDue(t, f.svc)
		assert.Equal(t, 1, n)
		specs := f.coord.submitted()
		require.Len(t, specs, 3)
		assert.Equal(t, specs[0].Digest(), specs[2].Digest(), "a resubmission is the same saga")
		assert.Equal(t, o.GID, specs[2].GID)

		// The order has been submitted just now: not again before
		// ResubmitAfter has passed.
		o2, err := f.svc.Get(context.Background(), o.ID)
		require.NoError(t, err)
		assert.Equal(t, order.Pending, o2.Status)
	})

	t.Run("ResubmitterRunsInBackground", func(t *testing.T) {
		f := newFixture(t, func(c *order.Config) {
			c.ResubmitAfter = time.Millisecond
			c.ResubmitInterval = 5 * time.Millisecond
		})
		var down atomic.Bool
		down.Store(true)
		f.coord.Submit = func(_ context.Context, spec saga.Spec, _ bool) (*dtx.TxDetail, error) {
			if down.Load() {
				return nil, errors.New("connection refused")
			}
			return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusRunning}}, nil
		}
		code, _, _ := f.place(t, twoWidgets, "", "")
		require.Equal(t, http.StatusAccepted, code)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.svc.Run(ctx) }()
		// The placement, then at least one refused background attempt.
		require.Eventually(t, func() bool { return len(f.coord.submitted()) >= 2 }, 10*time.Second, time.Millisecond)
		before := len(f.coord.submitted())
		down.Store(false)
		require.Eventually(t, func() bool { return len(f.coord.submitted()) > before }, 2*time.Second, 5*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
	})
}

func TestPlace_IdempotencyKey(t *testing.T) {
	t.Run("ReplayReturnsFirstOrder", func(t *testing.T) {
		f := newFixture(t)
		code, first, _ := f.place(t, twoWidgets, "k1", "")
		require.Equal(t, http.StatusCreated, code)
		// Same request, items in another order: the same request.
		code, again, body := f.place(t, `{"user_id":1,"items":[{"product_id":2,"quantity":1},{"product_id":1,"quantity":2}]}`, "k1", "")
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, first.ID, again.ID)
		assert.Equal(t, 1, f.countOrders(t))
	})

	t.Run("ReuseWithDifferentBodyIs409", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.place(t, twoWidgets, "k1", "")
		require.Equal(t, http.StatusCreated, code)
		code, _, body := f.place(t, `{"user_id":1,"items":[{"product_id":1,"quantity":3}]}`, "k1", "")
		assert.Equal(t, http.StatusConflict, code, body)
		code, _, _ = f.place(t, `{"user_id":4,"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}]}`, "k1", "")
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, 1, f.countOrders(t))
	})

	t.Run("DifferentKeysMakeDifferentOrders", func(t *testing.T) {
		f := newFixture(t)
		f.place(t, twoWidgets, "k1", "")
		f.place(t, twoWidgets, "k2", "")
		f.place(t, twoWidgets, "", "")
		f.place(t, twoWidgets, "", "")
		assert.Equal(t, 4, f.countOrders(t))
	})

	t.Run("ConcurrentDuplicatesMakeOneOrder", func(t *testing.T) {
		f := newFixture(t)
		const n = 16
		var wg sync.WaitGroup
		codes, ids, errs := make([]int, n), make([]int64, n), make([]error, n)
		start := make(chan struct{})
		c := &order.Client{URL: f.url}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				o, code, err := c.PlaceStatus(context.Background(), order.PlaceRequest{
					UserID: 1, Items: []order.Item{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}},
				}, "same-key", false)
				codes[i], errs[i] = code, err
				if o != nil {
					ids[i] = o.ID
				}
			}()
		}
		close(start)
		wg.Wait()
		created := 0
		for i := range n {
			require.NoError(t, errs[i])
			assert.Contains(t, []int{http.StatusCreated, http.StatusOK}, codes[i])
			assert.Equal(t, ids[0], ids[i])
			if codes[i] == http.StatusCreated {
				created++
			}
		}
		assert.Equal(t, 1, created)
		assert.Equal(t, 1, f.countOrders(t))
	})

	t.Run("ReplayOfUnsubmittedOrderResubmits", func(t *testing.T) {
		f := newFixture(t)
		f.coord.Submit = func(context.Context, saga.Spec, bool) (*dtx.TxDetail, error) { return nil, errors.New("down") }
		code, _, _ := f.place(t, twoWidgets, "k1", "")
		require.Equal(t, http.StatusAccepted, code)
		f.coord.Submit = nil
		code, _, _ = f.place(t, twoWidgets, "k1", "")
		assert.Equal(t, http.StatusOK, code)
		assert.Len(t, f.coord.submitted(), 2)
	})
}

// sagaCall calls one of the order service's own saga steps.
func (f *fixture) sagaCall(t *testing.T, path string, id int64, op dtx.Op) (int, string) {
	t.Helper()
	return shoptest.Call(t, f.url+path, order.GID(id), 0, op, fmt.Sprintf(`{"order_id":%d}`, id))
}

func (f *fixture) status(t *testing.T, id int64) order.Status {
	t.Helper()
	o, err := f.svc.Get(context.Background(), id)
	require.NoError(t, err)
	return o.Status
}

func TestSagaSteps(t *testing.T) {
	t.Run("CompleteIsIdempotentAndFinal", func(t *testing.T) {
		f := newFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		for range 2 {
			code, body := f.sagaCall(t, order.PathSagaComplete, o.ID, dtx.OpAction)
			require.Equal(t, http.StatusOK, code, body)
		}
		assert.Equal(t, order.Completed, f.status(t, o.ID))
		// A compensation reaching a completed order must not flip it (I8).
		code, _ := f.sagaCall(t, order.PathSagaCancel, o.ID, dtx.OpCompensate)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, order.Completed, f.status(t, o.ID))
	})

	t.Run("CancelIsIdempotentAndFinal", func(t *testing.T) {
		f := newFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		for range 2 {
			code, body := f.sagaCall(t, order.PathSagaCancel, o.ID, dtx.OpCompensate)
			require.Equal(t, http.StatusOK, code, body)
		}
		got, err := f.svc.Get(context.Background(), o.ID)
		require.NoError(t, err)
		assert.Equal(t, order.Cancelled, got.Status)
		assert.NotEmpty(t, got.Reason)
		// A late complete is a definite failure and changes nothing.
		code, _ := f.sagaCall(t, order.PathSagaComplete, o.ID, dtx.OpAction)
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, order.Cancelled, f.status(t, o.ID))
	})

	t.Run("WrongSagaIsRefused", func(t *testing.T) {
		f := newFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		code, _ := shoptest.Call(t, f.url+order.PathSagaComplete, "other-gid", 3, dtx.OpAction, fmt.Sprintf(`{"order_id":%d}`, o.ID))
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, order.Pending, f.status(t, o.ID))
	})

	t.Run("UnknownOrder", func(t *testing.T) {
		f := newFixture(t)
		code, _ := f.sagaCall(t, order.PathSagaComplete, 99, dtx.OpAction)
		assert.Equal(t, http.StatusConflict, code)
		code, _ = f.sagaCall(t, order.PathSagaCancel, 99, dtx.OpCompensate)
		assert.Equal(t, http.StatusOK, code, "nothing to cancel")
	})

	t.Run("MissingHeadersIs400", func(t *testing.T) {
		f := newFixture(t)
		resp, err := http.Post(f.url+order.PathSagaComplete, "application/json", bytes.NewBufferString(`{"order_id":1}`))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

func TestPlace_Wait(t *testing.T) {
	// The fake coordinator plays the saga's outcome by calling the order
	// service's own steps, as the real one would.
	t.Run("Succeeded", func(t *testing.T) {
		f := newFixture(t)
		f.coord.Submit = func(_ context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
			assert.True(t, wait)
			code, _ := shoptest.Call(t, spec.Steps[3].Action, spec.GID, 3, dtx.OpAction, string(spec.Steps[3].Payload))
			assert.Equal(t, http.StatusOK, code)
			return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusSucceeded}}, nil
		}
		code, o, body := f.place(t, twoWidgets, "", "?wait=true")
		require.Equal(t, http.StatusCreated, code, body)
		assert.Equal(t, order.Completed, o.Status)
	})

	t.Run("FailedKeepsTheReason", func(t *testing.T) {
		f := newFixture(t)
		f.coord.Submit = func(_ context.Context, spec saga.Spec, _ bool) (*dtx.TxDetail, error) {
			code, _ := shoptest.Call(t, spec.Steps[0].Compensate, spec.GID, 0, dtx.OpCompensate, string(spec.Steps[0].Payload))
			assert.Equal(t, http.StatusOK, code)
			return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusFailed, Reason: "payment: declined"}}, nil
		}
		// A refusal is 409 problem+json with the reason and the order.
		code, _, body := f.place(t, twoWidgets, "", "?wait=true")
		require.Equal(t, http.StatusConflict, code, body)
		var ref order.Refusal
		require.NoError(t, json.Unmarshal([]byte(body), &ref))
		assert.Equal(t, order.TypeOrderRefused, ref.Type)
		assert.Contains(t, ref.Detail, "payment: declined")
		require.NotNil(t, ref.Order)
		assert.Equal(t, order.Cancelled, ref.Order.Status)
		assert.Equal(t, "payment: declined", ref.Order.Reason)

		// order.Client returns it as the order, with its status.
		c := &order.Client{URL: f.url}
		o, status, err := c.PlaceStatus(context.Background(), order.PlaceRequest{UserID: 1, Items: []order.Item{{ProductID: 1, Quantity: 1}}}, "", true)
		require.NoError(t, err)
		assert.Equal(t, http.StatusConflict, status)
		assert.Equal(t, order.Cancelled, o.Status)
		assert.Equal(t, "payment: declined", o.Reason)

		// Without wait, POST /orders answers as before: the order is stored.
		code, o, body = f.place(t, twoWidgets, "", "")
		require.Equal(t, http.StatusCreated, code, body)
		assert.Equal(t, order.Cancelled, o.Status, "the fake decides at once")
	})

	t.Run("NotFinishedInTimeIs202", func(t *testing.T) {
		f := newFixture(t, func(c *order.Config) { c.WaitTimeout = 20 * time.Millisecond })
		f.coord.Submit = func(ctx context.Context, spec saga.Spec, _ bool) (*dtx.TxDetail, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		req, err := http.NewRequest(http.MethodPost, f.url+"/orders?wait=true", bytes.NewBufferString(twoWidgets))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		var o order.Order
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&o))
		assert.Equal(t, order.Pending, o.Status)
		assert.Equal(t, fmt.Sprintf("/orders/%d", o.ID), resp.Header.Get("Location"), "where to poll")
	})
}

func TestReads(t *testing.T) {
	f := newFixture(t)
	_, o1, _ := f.place(t, twoWidgets, "", "")
	_, o2, _ := f.place(t, twoWidgets, "", "")
	f.sagaCall(t, order.PathSagaComplete, o2.ID, dtx.OpAction)

	c := &order.Client{URL: f.url}
	ctx := context.Background()
	got, err := c.Get(ctx, o1.ID)
	require.NoError(t, err)
	assert.Equal(t, o1.ID, got.ID)
	assert.Len(t, got.Items, 2)

	_, err = c.Get(ctx, 999)
	var herr *order.HTTPError
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusNotFound, herr.Status)

	all, err := c.List(ctx, "")
	require.NoError(t, err)
	assert.Len(t, all, 2)
	done, err := c.List(ctx, order.Completed)
	require.NoError(t, err)
	require.Len(t, done, 1)
	assert.Equal(t, o2.ID, done[0].ID)
	_, err = c.List(ctx, "DONE")
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusBadRequest, herr.Status)

	placed, err := c.Place(ctx, order.PlaceRequest{UserID: 1, Items: []order.Item{{ProductID: 2, Quantity: 1}}}, "", false)
	require.NoError(t, err)
	assert.Equal(t, int64(250), placed.Total)
	_, err = c.Place(ctx, order.PlaceRequest{UserID: 1}, "", false)
	require.ErrorAs(t, err, &herr)
	assert.Equal(t, http.StatusBadRequest, herr.Status)
}

func TestNew_RequiresConfig(t *testing.T) {
	_, err := order.New(shoptest.MustSQLite(t), order.Config{})
	require.Error(t, err)
	for _, field := range []string{"URL", "InventoryURL", "PaymentURL", "Coordinator"} {
		assert.Contains(t, err.Error(), field)
	}
}

// resubmitWhenDue calls svc.Resubmit until it resubmits something (the
// orders become due once older than ResubmitAfter) and returns how many.
func resubmitWhenDue(t *testing.T, svc *order.Service) int {
	t.Helper()
	var n int
	var err error
	require.Eventually(t, func() bool {
		n, err = svc.Resubmit(context.Background())
		return err != nil || n > 0
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, err)
	return n
}
