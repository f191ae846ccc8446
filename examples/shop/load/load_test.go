package load

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop/order"
)

// The mixes draw the same orders, from the same seed, as the demo's and
// the chaos run's draws did before they shared this package.
func TestMixesDrawAsBefore(t *testing.T) {
	demo := func(rng *rand.Rand) order.PlaceRequest {
		weights := []struct {
			id int64
			w  int
		}{{1, 50}, {2, 38}, {3, 6}, {4, 3}, {5, 3}}
		seen := map[int64]bool{}
		var items []order.Item
		for range 1 + rng.IntN(3) {
			x := rng.IntN(100)
			var id int64
			for _, w := range weights {
				if x < w.w {
					id = w.id
					break
				}
				x -= w.w
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			items = append(items, order.Item{ProductID: id, Quantity: int64(1 + rng.IntN(3))})
		}
		return order.PlaceRequest{UserID: users[rng.IntN(len(users))], Items: items}
	}
	chaos := func(rng *rand.Rand) order.PlaceRequest {
		products := []int64{1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 5}
		var items []order.Item
		seen := map[int64]bool{}
		for range 1 + rng.IntN(2) {
			p := products[rng.IntN(len(products))]
			if !seen[p] {
				seen[p] = true
				items = append(items, order.Item{ProductID: p, Quantity: 1 + rng.Int64N(2)})
			}
		}
		return order.PlaceRequest{UserID: users[rng.IntN(len(users))], Items: items}
	}
	for _, c := range []struct {
		mix Mix
		old func(*rand.Rand) order.PlaceRequest
	}{{DemoMix, demo}, {ChaosMix, chaos}} {
		a, b := rand.New(rand.NewPCG(7, 1)), rand.New(rand.NewPCG(7, 1))
		for range 1000 {
			require.Equal(t, c.old(b), c.mix.Draw(a))
		}
	}
}

// fakeOrders is an order service that answers 503 to every first send of
// a key, then creates one order per key.
func fakeOrders(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	seen := map[string]int64{}
	var next atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(order.HeaderIdempotencyKey)
		if key == "refuse" {
			http.Error(w, `{"title":"bad"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		id, ok := seen[key]
		if !ok {
			seen[key] = 0
		} else if id == 0 {
			id = next.Add(1)
			seen[key] = id
		}
		mu.Unlock()
		if !ok {
			http.Error(w, `{"title":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(order.Order{ID: id, Status: order.Completed})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPlacerRetriesWithTheSameKey(t *testing.T) {
	srv := fakeOrders(t)
	p := &Placer{Client: &order.Client{URL: srv.URL, HTTP: srv.Client()}, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	ctx := context.Background()
	req := DemoMix.Draw(rand.New(rand.NewPCG(1, 1)))
	require.NotZero(t, p.Place(ctx, Request{Key: "a", Req: req}, true))
	require.NotZero(t, p.Place(ctx, Request{Key: "b", Req: req, Dupe: true}, true))
	require.Zero(t, p.Place(ctx, Request{Key: "refuse", Req: req}, true))
	require.Equal(t, 3, p.Keys())
	require.EqualValues(t, 1, p.Duplicates.Load())
	require.Positive(t, p.Retries.Load())
	require.Equal(t, []string{"refuse"}, p.Unanswered())
	require.Len(t, p.Problems(), 1)
	require.Contains(t, p.Problems()[0], "order request refuse refused")
}

func TestPlacerAttempts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"title":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	p := &Placer{Client: &order.Client{URL: srv.URL, HTTP: srv.Client()}, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	require.Zero(t, p.Place(context.Background(), Request{Key: "x"}, true))
	require.EqualValues(t, 3, p.Requests.Load())
	require.Len(t, p.Problems(), 1)
	require.Contains(t, p.Problems()[0], "order request x failed")
}
