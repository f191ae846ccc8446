// Package load is the reference shop's load model, shared by `dtx demo`
// (examples/shop/demo) and `dtx chaos` (internal/chaos): which orders are
// drawn (Mix), how they are placed with idempotency keys, duplicates
// included (Placer), and the checks after a run: what is still unfinished
// (Unfinished) and whether every order agrees with its transaction
// (CrossCheck).
package load

import (
	"fmt"
	"math/rand/v2"

	"github.com/dtxhq/dtx/examples/shop/order"
)

// Mix describes the orders drawn: a customer and some lines. Most orders
// can succeed; some are for the declined customer (2), the nearly broke
// one (3), the scarce product (4) or the sold-out one (5), so that a run
// also compensates for business reasons, not only for injected faults.
type Mix struct {
	// Users are drawn uniformly (repeat a user to weigh it).
	Users []int64
	// Products are drawn by weight for each line.
	Products []Weight
	// MaxLines: an order has 1..MaxLines lines (a product drawn twice
	// makes one line fewer).
	MaxLines int
	// MaxQuantity: a line has 1..MaxQuantity items.
	MaxQuantity int
}

// Weight is a product and its weight in a Mix.
type Weight struct {
	ProductID int64
	Weight    int
}

// The shop's customers as drawn: mostly the rich ones (1, 4), some of
// the nearly broke one (3), a few of the declined one (2).
var users = []int64{1, 1, 1, 1, 4, 4, 4, 3, 3, 2}

// DemoMix is `dtx demo`'s mix: 1–3 lines of 1–3 items.
var DemoMix = Mix{
	Users:       users,
	Products:    []Weight{{1, 50}, {2, 38}, {3, 6}, {4, 3}, {5, 3}},
	MaxLines:    3,
	MaxQuantity: 3,
}

// ChaosMix is `dtx chaos`'s mix: 1–2 lines of 1–2 items, more of the
// scarce and sold-out products.
var ChaosMix = Mix{
	Users:       users,
	Products:    []Weight{{1, 5}, {2, 4}, {3, 1}, {4, 1}, {5, 1}},
	MaxLines:    2,
	MaxQuantity: 2,
}

// Draw draws one order.
func (m Mix) Draw(rng *rand.Rand) order.PlaceRequest {
	total := 0
	for _, w := range m.Products {
		total += w.Weight
	}
	seen := map[int64]bool{}
	var items []order.Item
	for range 1 + rng.IntN(m.MaxLines) {
		x := rng.IntN(total)
		var id int64
		for _, w := range m.Products {
			if x < w.Weight {
				id = w.ProductID
				break
			}
			x -= w.Weight
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		items = append(items, order.Item{ProductID: id, Quantity: int64(1 + rng.IntN(m.MaxQuantity))})
	}
	return order.PlaceRequest{UserID: m.Users[rng.IntN(len(m.Users))], Items: items}
}

// First is the first n of ss, and a line saying how many more there are.
func First(ss []string, n int) []string {
	if len(ss) > n {
		return append(ss[:n:n], fmt.Sprintf("… and %d more", len(ss)-n))
	}
	return ss
}

// Round2 rounds f to two decimals.
func Round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
