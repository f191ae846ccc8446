package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/internal/redislock"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/redistest"
	"github.com/dtxhq/dtx/saga"
)

// TestSeedPlace_RedisLock: with Config.Lock on a real Redis, a second
// placement of an order while the first runs is refused (409), as in
// [003] §3; once the first is done a placement is the idempotent no-op.
func TestSeedPlace_RedisLock(t *testing.T) {
	srv := redistest.Start(t)
	lock, err := redislock.New(srv.URL(), 0)
	require.NoError(t, err)
	t.Cleanup(func() { lock.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })

	entered, release := make(chan struct{}, 1), make(chan struct{})
	f := newSeedFixture(t, playComplete, func(c *order.Config) { c.Lock = lock })
	f.coord.Submit = func(_ context.Context, spec saga.Spec, _ bool) (*dtx.TxDetail, error) {
		f.submits.Add(1)
		entered <- struct{}{}
		<-release // the first placement is in progress until the test says so
		code, body, err := shoptest.TryCall(spec.Steps[3].Action, spec.GID, 3, dtx.OpAction, string(spec.Steps[3].Payload))
		if err != nil || code != http.StatusOK {
			t.Errorf("complete: %d %s %v", code, body, err)
		}
		return &dtx.TxDetail{Tx: dtx.Tx{GID: spec.GID, Status: dtx.StatusSucceeded}}, nil
	}
	id := f.create(t)
	key := "order:" + jsonNumber(id)

	first := make(chan answer, 1)
	go func() {
		resp, err := http.Post(f.url+order.PathSeedPlace, "application/json", bytes.NewBufferString(placeBody(id)))
		if err != nil {
			first <- answer{}
			return
		}
		defer resp.Body.Close()
		var o order.Order
		json.NewDecoder(resp.Body).Decode(&o)
		first <- answer{status: resp.StatusCode, body: string(o.Status)}
	}()
	<-entered // the first placement holds the lock and runs

	held, err := rdb.Get(context.Background(), key).Result()
	require.NoError(t, err, "the first placement holds %s", key)
	second := f.post(t, order.PathSeedPlace, placeBody(id))
	assert.Equal(t, http.StatusConflict, second.status, second.body)
	assert.Equal(t, "application/problem+json", second.ctype)
	assert.Contains(t, second.body, "already in progress")
	now, err := rdb.Get(context.Background(), key).Result()
	require.NoError(t, err)
	assert.Equal(t, held, now, "the refused request left the holder's lock alone")

	close(release)
	a := <-first
	assert.Equal(t, http.StatusCreated, a.status)
	assert.Equal(t, string(order.Completed), a.body)
	n, err := rdb.Exists(context.Background(), key).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "released after the placement")

	again := f.post(t, order.PathSeedPlace, placeBody(id))
	assert.Equal(t, http.StatusOK, again.status, again.body)
	assert.Equal(t, int64(1), f.submits.Load(), "one execution")
}

// TestSeedPlace_LockHeldByAnotherOwner: a lock on the order held by
// another owner refuses the placement and is not deleted by it.
func TestSeedPlace_LockHeldByAnotherOwner(t *testing.T) {
	srv := redistest.Start(t)
	lock, err := redislock.New(srv.URL(), 0)
	require.NoError(t, err)
	t.Cleanup(func() { lock.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	f := newSeedFixture(t, playComplete, func(c *order.Config) { c.Lock = lock })
	id := f.create(t)
	key := "order:" + jsonNumber(id)
	require.NoError(t, rdb.Set(context.Background(), key, "another-owner", time.Minute).Err())

	a := f.post(t, order.PathSeedPlace, placeBody(id))
	assert.Equal(t, http.StatusConflict, a.status, a.body)
	got, err := rdb.Get(context.Background(), key).Result()
	require.NoError(t, err)
	assert.Equal(t, "another-owner", got)
	assert.Zero(t, f.submits.Load())

	srv.Stop() // Redis down: 503 with the reason, nothing placed
	a = f.post(t, order.PathSeedPlace, placeBody(id))
	assert.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
	assert.Contains(t, a.body, "lock service unavailable")
	assert.Zero(t, f.submits.Load())
}

func jsonNumber(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
