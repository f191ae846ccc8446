package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/payment"
	"github.com/dtxhq/dtx/internal/redistest"
)

func seedPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// TestShop_SeedEndpoints runs the seeds' endpoints against the real
// services and coordinator, with the Redis lock on: [001]'s result code
// names the step that refused, and [003]'s create-then-place is one order.
func TestShop_SeedEndpoints(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	s := shoptest.MustShop(t, shop.Config{LockURL: redis.URL()})
	u := s.OrderURL()

	checkSagaCodes(t, u)

	status, body := seedPost(t, u+order.PathSeedCreate, `{"orderItems":[{"productId":1,"quantity":1},{"productId":2,"quantity":1}],"userId":1}`)
	require.Equal(t, http.StatusCreated, status, body)
	var created struct {
		OrderID int64 `json:"orderId"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	status, body = seedPost(t, u+order.PathSeedPlace, fmt.Sprintf(`{"orderId":%d}`, created.OrderID))
	require.Equal(t, http.StatusCreated, status, body)
	var o order.Order
	require.NoError(t, json.Unmarshal([]byte(body), &o))
	assert.Equal(t, order.Completed, o.Status)
	status, body = seedPost(t, u+order.PathSeedPlace, fmt.Sprintf(`{"orderId":%d}`, created.OrderID))
	require.Equal(t, http.StatusOK, status, body)

	rep := settle(t, s, 30*time.Second)
	assert.Equal(t, shopReport{completed: 2, cancelled: 3}, *rep)
}

func TestStart_LockUnreachable(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	redis.Stop()
	_, err := shop.Start(context.Background(), shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, LockURL: redis.URL(), Logger: shoptest.Logger()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lock")
	_, err = shop.Start(context.Background(), shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, LockURL: "http://nope", Logger: shoptest.Logger()})
	require.Error(t, err)
	// A lock that could expire while its placement still runs is refused.
	_, err = shop.Start(context.Background(), shop.Config{Dir: t.TempDir(), Coordinator: &switchable{}, LockURL: redis.URL(),
		LockTTL: 20 * time.Second, WaitTimeout: 30 * time.Second, Logger: shoptest.Logger()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lock TTL 20s must be at least")
}

// checkSagaCodes posts [001]'s /saga/order once per outcome.
func checkSagaCodes(t *testing.T, u string) {
	t.Helper()
	for _, tc := range []struct {
		name, body, code string
		status           int
	}{
		{"Success", `{"userId":1,"productId":1,"quantity":2,"price":10000}`, order.ResultSuccess, http.StatusCreated},
		{"InsufficientStock", `{"userId":1,"productId":4,"quantity":6}`, order.ResultFailedInventory, http.StatusConflict},
		{"PaymentDeclined", fmt.Sprintf(`{"userId":%d,"productId":3,"quantity":1}`, payment.DeclinedUserID), order.ResultFailedPayment, http.StatusConflict},
		{"InsufficientBalance", `{"userId":3,"productId":3,"quantity":4}`, order.ResultFailedPayment, http.StatusConflict},
		{"InvalidOrder", `{"userId":1,"productId":99,"quantity":1}`, order.ResultFailedOrder, http.StatusBadRequest},
	} {
		status, body := seedPost(t, u+order.PathSeedSaga, tc.body)
		assert.Equal(t, tc.code, body, tc.name)
		assert.Equal(t, tc.status, status, tc.name)
	}

}

// TestShop_SeedSagaCodesTCC: the result codes name the refusing step
// under the TCC pattern too.
func TestShop_SeedSagaCodesTCC(t *testing.T) {
	t.Parallel()
	s := shoptest.MustShop(t, shop.Config{Pattern: order.PatternTCC})
	checkSagaCodes(t, s.OrderURL())
	rep := settle(t, s, 30*time.Second)
	assert.Equal(t, shopReport{completed: 1, cancelled: 3}, *rep)
}

// TestShop_SeedSagaCodesChoreography: without a coordinator, the code
// names the service whose failure event cancelled the order.
func TestShop_SeedSagaCodesChoreography(t *testing.T) {
	t.Parallel()
	s := choreoShop(t, shop.Config{})
	checkSagaCodes(t, s.OrderURL())
	rep := settle(t, s, 30*time.Second)
	assert.Equal(t, shopReport{completed: 1, cancelled: 3}, *rep)
}
