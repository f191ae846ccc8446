package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/saga"
)

func tccFixture(t *testing.T, tweak ...func(*order.Config)) *fixture {
	return newFixture(t, append([]func(*order.Config){func(c *order.Config) { c.Pattern = order.PatternTCC }}, tweak...)...)
}

func TestTCC_Spec(t *testing.T) {
	f := tccFixture(t)
	code, o, body := f.place(t, twoWidgets, "", "")
	require.Equal(t, http.StatusCreated, code, body)
	assert.Equal(t, order.PatternTCC, o.Pattern)
	assert.Empty(t, f.coord.submitted(), "no saga for a TCC order")
	specs := f.coord.submittedTCC()
	require.Len(t, specs, 1)
	spec := specs[0]
	assert.Equal(t, order.GID(o.ID), spec.GID)
	assert.Equal(t, dtx.Duration(30*time.Second), spec.Timeout)
	assert.Equal(t, dtx.Duration(2*time.Second), spec.BranchTimeout)
	require.Len(t, spec.Participants, 3)

	p := spec.Participants[0]
	assert.Equal(t, "order", p.Name)
	assert.Empty(t, p.Try)
	assert.Equal(t, f.url+order.PathSagaCancel, p.Cancel)
	assert.Equal(t, f.url+order.PathSagaComplete, p.Confirm)

	inv := spec.Participants[1]
	assert.Equal(t, "inventory", inv.Name)
	assert.Contains(t, inv.Try, "/inventory/reserve")
	assert.Contains(t, inv.Confirm, "/inventory/reserve/confirm")
	assert.Contains(t, inv.Cancel, "/inventory/reserve/cancel")
	var deduct struct {
		OrderID int64        `json:"order_id"`
		Items   []order.Item `json:"items"`
	}
	require.NoError(t, json.Unmarshal(inv.Payload, &deduct))
	assert.Equal(t, o.ID, deduct.OrderID)
	assert.Equal(t, o.Items, deduct.Items)

	pay := spec.Participants[2]
	assert.Equal(t, "payment", pay.Name)
	assert.Equal(t, "http://payment.invalid/payment/reserve", pay.Try)
	assert.Equal(t, "http://payment.invalid/payment/reserve/confirm", pay.Confirm)
	assert.Equal(t, "http://payment.invalid/payment/reserve/cancel", pay.Cancel)
	assert.JSONEq(t, `{"order_id":`+jsonInt(o.ID)+`,"user_id":1,"amount":450}`, string(pay.Payload))

	_, err := spec.Saga()
	require.NoError(t, err, "the coordinator accepts the spec")
	assert.Equal(t, f.svc.TCCSpec(o), spec, "deterministic: resubmission is idempotent")
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestTCC_PatternIsStoredPerOrder(t *testing.T) {
	// An order keeps its pattern when it is resubmitted, even by a service
	// now configured with another one.
	db := shoptest.MustSQLite(t)
	prices := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id":1,"name":"Widget","price":100}]`)
	}))
	t.Cleanup(prices.Close)
	coord := &fakeCoordinator{}
	coord.Submit = func(context.Context, saga.Spec, bool) (*dtx.TxDetail, error) {
		return nil, assert.AnError // coordinator down
	}
	mk := func(pattern string) *order.Service {
		svc, err := order.New(db, order.Config{
			URL: "http://order.invalid", InventoryURL: prices.URL, PaymentURL: "http://payment.invalid",
			Coordinator: coord, Pattern: pattern, ResubmitAfter: time.Nanosecond, Logger: shoptest.Logger(),
		})
		require.NoError(t, err)
		require.NoError(t, svc.Migrate(context.Background()))
		return svc
	}
	ctx := context.Background()
	tccSvc := mk(order.PatternTCC)
	placed, err := tccSvc.Place(ctx, order.PlaceRequest{UserID: 1, Items: []order.Item{{ProductID: 1, Quantity: 1}}}, "", false)
	require.NoError(t, err)
	assert.False(t, placed.Submitted)
	require.Len(t, coord.submittedTCC(), 1)

	coord.mu.Lock()
	coord.Submit = nil // back up
	coord.mu.Unlock()
	sagaSvc := mk("") // default saga
	n := resubmitWhenDue(t, sagaSvc)
	assert.Equal(t, 1, n)
	assert.Len(t, coord.submittedTCC(), 2, "resubmitted as TCC")
	assert.Empty(t, coord.submitted(), "never as a saga")
}

func TestTCC_OrderStepsAcceptTCCOps(t *testing.T) {
	t.Run("Confirm", func(t *testing.T) {
		f := tccFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		for range 2 {
			code, body := f.sagaCall(t, order.PathSagaComplete, o.ID, dtx.OpConfirm)
			require.Equal(t, http.StatusOK, code, body)
		}
		assert.Equal(t, order.Completed, f.status(t, o.ID))
		code, _ := f.sagaCall(t, order.PathSagaCancel, o.ID, dtx.OpCancel)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, order.Completed, f.status(t, o.ID), "a cancel never flips a completed order")
	})
	t.Run("Cancel", func(t *testing.T) {
		f := tccFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		code, body := f.sagaCall(t, order.PathSagaCancel, o.ID, dtx.OpCancel)
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, order.Cancelled, f.status(t, o.ID))
		code, _ = f.sagaCall(t, order.PathSagaComplete, o.ID, dtx.OpConfirm)
		assert.Equal(t, http.StatusConflict, code)
	})
	t.Run("OtherOpsRefused", func(t *testing.T) {
		f := tccFixture(t)
		_, o, _ := f.place(t, twoWidgets, "", "")
		code, _ := f.sagaCall(t, order.PathSagaComplete, o.ID, dtx.OpTry)
		assert.Equal(t, http.StatusConflict, code)
		code, _ = f.sagaCall(t, order.PathSagaCancel, o.ID, dtx.OpAction)
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, order.Pending, f.status(t, o.ID))
	})
}

func TestTCC_CoordinatorFunc(t *testing.T) {
	var got saga.Spec
	c := order.CoordinatorFunc(func(_ context.Context, spec saga.Spec, _ bool) (*dtx.TxDetail, error) {
		got = spec
		return &dtx.TxDetail{}, nil
	})
	f := newFixture(t, func(cfg *order.Config) { cfg.Coordinator = c; cfg.Pattern = order.PatternTCC })
	_, o, _ := f.place(t, twoWidgets, "", "")
	assert.Equal(t, o.GID, got.GID)
	assert.True(t, got.Parallel, "the TCC transaction's saga")
	assert.Len(t, got.Steps, 6, "3 tries/cancels + 3 confirms")
}

func TestNew_RejectsUnknownPattern(t *testing.T) {
	_, err := order.New(shoptest.MustSQLite(t), order.Config{
		URL: "http://a", InventoryURL: "http://b", PaymentURL: "http://c",
		Coordinator: &fakeCoordinator{}, Pattern: "2pc",
	})
	require.ErrorContains(t, err, "Pattern")
}
