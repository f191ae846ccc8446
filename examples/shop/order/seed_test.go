package order_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/saga"
)

// seedFixture is the order service with its database at hand, and a
// coordinator that plays the outcome chosen by the test by calling the
// order service's own steps, as the real one would.
type seedFixture struct {
	svc     *order.Service
	db      *sql.DB
	url     string
	coord   *fakeCoordinator
	submits atomic.Int64
}

// Outcomes the fake coordinator plays.
const (
	playComplete = "complete"
	playPending  = "pending"
)

func newSeedFixture(t *testing.T, play string, tweak ...func(*order.Config)) *seedFixture {
	t.Helper()
	f := &seedFixture{coord: &fakeCoordinator{}}
	f.coord.Submit = func(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
		f.submits.Add(1)
		switch play {
		case playComplete:
			code, body, err := shoptest.TryCall(spec.Steps[3].Action, spec.GID, 3, dtx.OpAction, string(spec.Steps[3].Payload))
			if err != nil || code != http.StatusOK {
				return nil, fmt.Errorf("complete: %d %s %v", code, body, err)
			}
			return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusSucceeded}}, nil
		case playPending:
			<-ctx.Done()
			return nil, ctx.Err()
		default: // play is the coordinator's reason for the failure
			code, body, err := shoptest.TryCall(spec.Steps[0].Compensate, spec.GID, 0, dtx.OpCompensate, string(spec.Steps[0].Payload))
			if err != nil || code != http.StatusOK {
				return nil, fmt.Errorf("cancel: %d %s %v", code, body, err)
			}
			return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusFailed, Reason: play}}, nil
		}
	}
	inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		ResubmitAfter: time.Hour,
		WaitTimeout:   5 * time.Second,
		Logger:        shoptest.Logger(),
	}
	for _, fn := range tweak {
		fn(&cfg)
	}
	f.db = shoptest.MustSQLite(t)
	svc, err := order.New(f.db, cfg)
	require.NoError(t, err)
	require.NoError(t, svc.Migrate(context.Background()))
	mux.Handle("/", svc.Handler())
	f.svc, f.url = svc, srv.URL
	return f
}

type answer struct {
	status   int
	ctype    string
	location string
	reason   string
	body     string
}

func (f *seedFixture) post(t *testing.T, path, body string) answer {
	t.Helper()
	resp, err := http.Post(f.url+path, "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), resp.Header.Get("Dtx-Reason"), string(raw)}
}

// create posts [003]'s POST /order and returns the draft id.
func (f *seedFixture) create(t *testing.T) int64 {
	t.Helper()
	a := f.post(t, order.PathSeedCreate, `{"orderItems":[{"productId":1,"quantity":2},{"productId":2,"quantity":2}]}`)
	require.Equal(t, http.StatusCreated, a.status, a.body)
	var got struct {
		OrderID int64 `json:"orderId"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &got))
	require.Positive(t, got.OrderID)
	return got.OrderID
}

func placeBody(id int64) string { return fmt.Sprintf(`{"orderId":%d}`, id) }

func TestSeedCreateThenPlace(t *testing.T) {
	t.Run("CreateStoresADraftOnly", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		a, b := f.create(t), f.create(t)
		assert.NotEqual(t, a, b, "each create issues a new id")
		orders, err := f.svc.List(context.Background(), "")
		require.NoError(t, err)
		assert.Empty(t, orders, "nothing is placed before /order/place")
		assert.Zero(t, f.submits.Load())
	})

	t.Run("PlaceCompletesAndPlacingAgainIsANoOp", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		id := f.create(t)
		first := f.post(t, order.PathSeedPlace, placeBody(id))
		require.Equal(t, http.StatusCreated, first.status, first.body)
		var o order.Order
		require.NoError(t, json.Unmarshal([]byte(first.body), &o))
		assert.Equal(t, order.Completed, o.Status)
		assert.Equal(t, int64(2*100+2*250), o.Total)
		assert.Equal(t, int64(1), o.UserID, "[003] charges user 1 by default")
		assert.Equal(t, order.PathOrders+"/"+fmt.Sprint(o.ID), first.location)

		again := f.post(t, order.PathSeedPlace, placeBody(id))
		require.Equal(t, http.StatusOK, again.status, again.body)
		var o2 order.Order
		require.NoError(t, json.Unmarshal([]byte(again.body), &o2))
		assert.Equal(t, o.ID, o2.ID)
		assert.Equal(t, order.Completed, o2.Status)
		assert.Equal(t, int64(1), f.submits.Load(), "a completed order is not run again")
		orders, err := f.svc.List(context.Background(), "")
		require.NoError(t, err)
		assert.Len(t, orders, 1)
	})

	t.Run("ConcurrentPlacementsAreOneOrder", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		id := f.create(t)
		const n = 8
		codes := make(chan int, n)
		for range n {
			go func() {
				resp, err := http.Post(f.url+order.PathSeedPlace, "application/json", bytes.NewBufferString(placeBody(id)))
				if err != nil {
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		for range n {
			c := <-codes
			assert.Contains(t, []int{http.StatusCreated, http.StatusOK}, c)
		}
		orders, err := f.svc.List(context.Background(), "")
		require.NoError(t, err)
		require.Len(t, orders, 1)
		assert.Equal(t, order.Completed, orders[0].Status)
	})

	t.Run("RefusedIs409ProblemWithTheReason", func(t *testing.T) {
		f := newSeedFixture(t, "step 1 (inventory) failed: insufficient stock for product 1")
		a := f.post(t, order.PathSeedPlace, placeBody(f.create(t)))
		require.Equal(t, http.StatusConflict, a.status, a.body)
		assert.Equal(t, "application/problem+json", a.ctype)
		assert.Contains(t, a.body, "cancelled")
		assert.Contains(t, a.body, "insufficient stock")
		assert.NotEmpty(t, a.location)
	})

	t.Run("PendingIs202WithALocationToPoll", func(t *testing.T) {
		f := newSeedFixture(t, playPending, func(c *order.Config) { c.WaitTimeout = 50 * time.Millisecond })
		a := f.post(t, order.PathSeedPlace, placeBody(f.create(t)))
		require.Equal(t, http.StatusAccepted, a.status, a.body)
		var o order.Order
		require.NoError(t, json.Unmarshal([]byte(a.body), &o))
		assert.Equal(t, order.Pending, o.Status)
		assert.Equal(t, order.PathOrders+"/"+fmt.Sprint(o.ID), a.location)
		poll, err := http.Get(f.url + a.location)
		require.NoError(t, err)
		poll.Body.Close()
		assert.Equal(t, http.StatusOK, poll.StatusCode)
	})

	t.Run("BadInput", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		for _, tc := range []struct{ path, body string }{
			{order.PathSeedCreate, `{"orderItems":[]}`},
			{order.PathSeedCreate, `{"orderItems":[{"productId":0,"quantity":1}]}`},
			{order.PathSeedCreate, `{"orderItems":[{"productId":1,"quantity":1}],"bogus":1}`},
			{order.PathSeedPlace, `{"orderId":0}`},
			{order.PathSeedPlace, `nope`},
		} {
			a := f.post(t, tc.path, tc.body)
			assert.Equal(t, http.StatusBadRequest, a.status, "%s %s: %s", tc.path, tc.body, a.body)
			assert.Equal(t, "application/problem+json", a.ctype)
		}
		a := f.post(t, order.PathSeedPlace, `{"orderId":12345}`)
		assert.Equal(t, http.StatusNotFound, a.status, a.body)
	})

	t.Run("DatabaseDownIs503WithTheReason", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		id := f.create(t)
		require.NoError(t, f.db.Close())
		for _, a := range []answer{
			f.post(t, order.PathSeedPlace, placeBody(id)),
			f.post(t, order.PathSeedCreate, `{"orderItems":[{"productId":1,"quantity":1}]}`),
			f.post(t, order.PathOrders, `{"user_id":1,"items":[{"product_id":1,"quantity":1}]}`),
		} {
			assert.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
			assert.Equal(t, "application/problem+json", a.ctype)
			assert.Contains(t, a.body, "order database unavailable")
		}
	})
}

func TestSeedSagaOrder(t *testing.T) {
	const body = `{"userId":1,"productId":1,"quantity":2,"price":10000}`
	for _, tc := range []struct {
		name, play, code string
		status           int
	}{
		{"Success", playComplete, order.ResultSuccess, http.StatusCreated},
		{"InventoryRefused", "step 1 (inventory) failed: insufficient stock", order.ResultFailedInventory, http.StatusConflict},
		{"PaymentRefused", "step 2 (payment) failed: payment declined", order.ResultFailedPayment, http.StatusConflict},
		{"TCCPaymentTryRefused", "step 2 (payment.try) failed: HTTP 409: payment: declined", order.ResultFailedPayment, http.StatusConflict},
		{"TCCInventoryTryRefused", "step 1 (inventory.try) failed: HTTP 409: insufficient stock", order.ResultFailedInventory, http.StatusConflict},
		{"TimedOutIsNotBlamedOnAStep", "timed out after 30s", order.ResultFailedOrder, http.StatusConflict},
		// A reason that only mentions a step in passing is not that step's refusal.
		{"UnparsedReason", "operator abort: payment looked odd", order.ResultFailedOrder, http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSeedFixture(t, tc.play)
			a := f.post(t, order.PathSeedSaga, body)
			assert.Equal(t, tc.status, a.status)
			assert.Equal(t, tc.code, a.body)
			require.NotEmpty(t, a.location)
			o := getOrder(t, f.url+a.location)
			if tc.code == order.ResultSuccess {
				assert.Equal(t, order.Completed, o.Status)
				assert.Empty(t, a.reason)
			} else {
				assert.Equal(t, order.Cancelled, o.Status)
				assert.Equal(t, tc.play, a.reason)
			}
			assert.Equal(t, int64(2*100), o.Total, "the client's price is ignored")
		})
	}

	t.Run("PendingIsNeverSuccess", func(t *testing.T) {
		f := newSeedFixture(t, playPending, func(c *order.Config) { c.WaitTimeout = 50 * time.Millisecond })
		a := f.post(t, order.PathSeedSaga, body)
		assert.Equal(t, http.StatusAccepted, a.status)
		assert.Equal(t, order.ResultPending, a.body)
		assert.Equal(t, order.Pending, getOrder(t, f.url+a.location).Status)
	})

	t.Run("OrderNotCreatedIsFailedOrder", func(t *testing.T) {
		f := newSeedFixture(t, playComplete)
		a := f.post(t, order.PathSeedSaga, `{"userId":0,"productId":1,"quantity":2}`)
		assert.Equal(t, http.StatusBadRequest, a.status)
		assert.Equal(t, order.ResultFailedOrder, a.body)
		assert.Contains(t, a.reason, "user_id")

		require.NoError(t, f.db.Close())
		a = f.post(t, order.PathSeedSaga, body)
		assert.Equal(t, http.StatusServiceUnavailable, a.status)
		assert.Equal(t, order.ResultFailedOrder, a.body)
		assert.Contains(t, a.reason, "order database unavailable")
		assert.Zero(t, f.submits.Load())
	})
}

func TestSagaResult(t *testing.T) {
	for _, tc := range []struct {
		o      order.Order
		code   string
		status int
	}{
		{order.Order{Status: order.Completed}, order.ResultSuccess, http.StatusCreated},
		{order.Order{Status: order.Pending, Reason: "step 1 (inventory) failed: x"}, order.ResultPending, http.StatusAccepted},
		{order.Order{Status: order.Cancelled, Pattern: order.PatternChoreography, Reason: "payment: declined"}, order.ResultFailedPayment, http.StatusConflict},
		{order.Order{Status: order.Cancelled, Pattern: order.PatternChoreography, Reason: "inventory: insufficient stock"}, order.ResultFailedInventory, http.StatusConflict},
		// Only a choreographed order's reason is its refusing service's error.
		{order.Order{Status: order.Cancelled, Pattern: order.PatternSaga, Reason: "payment: declined"}, order.ResultFailedOrder, http.StatusConflict},
		{order.Order{Status: order.Cancelled, Pattern: order.PatternChoreography, Reason: "cancelled"}, order.ResultFailedOrder, http.StatusConflict},
		{order.Order{Status: order.Cancelled, Reason: "step 3 (complete) failed: x"}, order.ResultFailedOrder, http.StatusConflict},
	} {
		code, status := order.SagaResult(&tc.o)
		assert.Equal(t, tc.code, code, "%+v", tc.o)
		assert.Equal(t, tc.status, status, "%+v", tc.o)
	}
}

func getOrder(t *testing.T, u string) *order.Order {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var o order.Order
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&o))
	return &o
}
