package order

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// minRefresh limits how often an unknown product id makes the price list
// be fetched again.
const minRefresh = time.Second

// priceList caches the inventory's prices. Prices in the shop do not change
// while it runs; if they did, the inventory would refuse a deduct priced
// from a stale entry and the saga would cancel the order.
type priceList struct {
	client *http.Client
	url    string

	mu      sync.Mutex // held across a fetch: one fetch at a time
	prices  map[int64]int64
	fetched time.Time
}

// fill sets the unit price of every item, fetching the price list when an
// item is not in the cache. Unknown products are ErrInvalid.
func (p *priceList) fill(ctx context.Context, items []Item) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.has(items) && time.Since(p.fetched) >= minRefresh {
		if err := p.fetch(ctx); err != nil {
			return fmt.Errorf("%w: %v", ErrPricesUnavailable, err)
		}
	}
	for i := range items {
		price, ok := p.prices[items[i].ProductID]
		if !ok {
			return fmt.Errorf("%w: unknown product %d", ErrInvalid, items[i].ProductID)
		}
		items[i].Price = price
	}
	return nil
}

func (p *priceList) has(items []Item) bool {
	for _, it := range items {
		if _, ok := p.prices[it.ProductID]; !ok {
			return false
		}
	}
	return true
}

func (p *priceList) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	var products []struct {
		ID    int64 `json:"id"`
		Price int64 `json:"price"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&products); err != nil {
		return fmt.Errorf("GET %s: %w", p.url, err)
	}
	p.prices = make(map[int64]int64, len(products))
	for _, pr := range products {
		p.prices[pr.ID] = pr.Price
	}
	p.fetched = time.Now()
	return nil
}
