package redislock

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/redistest"
)

func newLocker(t *testing.T, ttl time.Duration) (*Locker, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	l, err := New(srv.URL(), ttl)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return l, rdb, srv
}

func TestLock_ExclusiveUntilReleased(t *testing.T) {
	l, rdb, _ := newLocker(t, 0)
	ctx := context.Background()
	require.NoError(t, l.Ping(ctx))

	unlock, err := l.Lock(ctx, "order:1")
	require.NoError(t, err)
	ttl, err := rdb.PTTL(ctx, "order:1").Result()
	require.NoError(t, err)
	assert.Positive(t, ttl)
	assert.LessOrEqual(t, ttl, DefaultTTL, "the key expires by itself if the holder dies")

	_, err = l.Lock(ctx, "order:1")
	require.ErrorIs(t, err, order.ErrLocked)
	other, err := l.Lock(ctx, "order:2")
	require.NoError(t, err, "other keys are independent")
	other()

	unlock()
	n, err := rdb.Exists(ctx, "order:1").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "released")
	again, err := l.Lock(ctx, "order:1")
	require.NoError(t, err)
	again()
}

func TestLock_ConcurrentTakersOneWins(t *testing.T) {
	l, _, _ := newLocker(t, 0)
	const n = 16
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		won    int
		locked int
	)
	start := make(chan struct{})
	unlocks := make(chan func(), n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			unlock, err := l.Lock(context.Background(), "order:7")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				unlocks <- unlock
			case assert.ErrorIs(t, err, order.ErrLocked):
				locked++
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, 1, won)
	assert.Equal(t, n-1, locked)
	close(unlocks)
	for u := range unlocks {
		u()
	}
}

func TestLock_ReleaseNeverDeletesAnotherHoldersLock(t *testing.T) {
	l, rdb, _ := newLocker(t, 0)
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "order:3")
	require.NoError(t, err)
	// Our lock expired and another holder took the key (simulated: the
	// key now holds someone else's token).
	require.NoError(t, rdb.Set(ctx, "order:3", "someone-else", time.Minute).Err())

	unlock()
	got, err := rdb.Get(ctx, "order:3").Result()
	require.NoError(t, err)
	assert.Equal(t, "someone-else", got, "the other holder's lock is intact")
	_, err = l.Lock(ctx, "order:3")
	assert.ErrorIs(t, err, order.ErrLocked)

	// The script itself reports what it did.
	_, err = l.Lock(ctx, "order:4")
	require.NoError(t, err)
	assert.ErrorIs(t, l.unlock(ctx, "order:4", "not-our-token"), errNotHeld)
	n, err := rdb.Exists(ctx, "order:4").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}

func TestLock_ExpiresWithItsTTL(t *testing.T) {
	l, rdb, _ := newLocker(t, 200*time.Millisecond)
	ctx := context.Background()
	_, err := l.Lock(ctx, "order:5") // the holder "dies": never released
	require.NoError(t, err)
	ttl, err := rdb.PTTL(ctx, "order:5").Result()
	require.NoError(t, err)
	assert.Positive(t, ttl)
	assert.LessOrEqual(t, ttl, 200*time.Millisecond)
	// Waits on the outcome (the key is gone), not on a fixed sleep.
	require.Eventually(t, func() bool {
		n, err := rdb.Exists(ctx, "order:5").Result()
		return err == nil && n == 0
	}, 30*time.Second, 20*time.Millisecond)
	unlock, err := l.Lock(ctx, "order:5")
	require.NoError(t, err)
	unlock()
}

func TestLock_RedisDownIsUnavailable(t *testing.T) {
	l, _, srv := newLocker(t, 0)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := l.Lock(ctx, "order:6")
	require.ErrorIs(t, err, order.ErrLockUnavailable)
	assert.ErrorIs(t, l.Ping(ctx), order.ErrLockUnavailable)
}

func TestNew_BadURL(t *testing.T) {
	_, err := New("http://nope", 0)
	require.Error(t, err)
}
