// Package redislock is a small duplicate-execution lock on Redis, the one
// the seeds put around an order's placement ([003]: "order:{id}").
//
// Lock takes a key with SET key token NX PX ttl, where token is random and
// unique to this holder, so it fails at once when another holder has the
// key, and the key disappears by itself after ttl if the holder dies. The
// release runs a Lua script that deletes the key only if it still holds
// this holder's token: a lock that expired and was taken by someone else
// is never deleted by its previous holder. The TTL must exceed the
// longest placement (DefaultTTL is generous); if a placement outlives it,
// a second one may start, which the order's idempotency key still makes
// harmless.
package redislock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dtxhq/dtx/examples/shop/order"
)

// DefaultTTL is the lock's lifetime when Config.TTL is zero: longer than
// the worst-case placement (order.DefaultWaitTimeout plus the price
// lookup and the database writes).
const DefaultTTL = 2 * time.Minute

// Locker takes locks on one Redis server. It implements order.Locker and
// is safe for concurrent use.
type Locker struct {
	rdb *redis.Client
	ttl time.Duration
}

// New connects to the Redis at url (redis://host:port[/db], or
// unix:///path/to/redis.sock). ttl zero means DefaultTTL.
func New(url string, ttl time.Duration) (*Locker, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redislock: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Locker{rdb: redis.NewClient(opt), ttl: ttl}, nil
}

// Ping checks that the server answers.
func (l *Locker) Ping(ctx context.Context) error {
	if err := l.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %v", order.ErrLockUnavailable, err)
	}
	return nil
}

// Close closes the connections to Redis.
func (l *Locker) Close() error { return l.rdb.Close() }

// TTL is the lifetime of a lock.
func (l *Locker) TTL() time.Duration { return l.ttl }

// release deletes KEYS[1] only if it holds ARGV[1], this holder's token.
var release = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Lock takes key. It returns order.ErrLocked when another holder has it,
// order.ErrLockUnavailable when Redis does not answer, and otherwise an
// unlock function that deletes the key only while it is still ours.
func (l *Locker) Lock(ctx context.Context, key string) (func(), error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(b[:])
	ok, err := l.rdb.SetNX(ctx, key, token, l.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: lock %s: %v", order.ErrLockUnavailable, key, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w (lock %s is held)", order.ErrLocked, key)
	}
	return func() {
		// Released even if the request's context is gone; bounded so a
		// dead Redis cannot hold the caller (the TTL frees the key then).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.unlock(ctx, key, token)
	}, nil
}

// unlock runs the compare-and-delete script; errNotHeld when key no
// longer holds token.
func (l *Locker) unlock(ctx context.Context, key, token string) error {
	n, err := release.Run(ctx, l.rdb, []string{key}, token).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return errNotHeld
	}
	return nil
}

var errNotHeld = errors.New("redislock: lock no longer held")

var _ order.Locker = (*Locker)(nil)
