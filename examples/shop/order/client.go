package order

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dtxhq/dtx/internal/problem"
)

// Client calls the order service over HTTP.
type Client struct {
	// URL is the order service's base URL.
	URL string
	// HTTP is the client used (default http.DefaultClient).
	HTTP *http.Client
}

// HTTPError is a non-2xx answer from the order service.
type HTTPError struct {
	Status int
	Detail string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("order service: %d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
}

// Place posts an order. idemKey may be empty; with wait the call returns
// once the order's saga has finished (or the service's wait timeout passed).
func (c *Client) Place(ctx context.Context, req PlaceRequest, idemKey string, wait bool) (*Order, error) {
	o, _, err := c.PlaceStatus(ctx, req, idemKey, wait)
	return o, err
}

// PlaceStatus is Place that also returns the HTTP status: 201 created, 200
// replayed for the Idempotency-Key, 202 stored but its saga not (yet)
// submitted or finished; with wait, 409 when the order was refused
// (CANCELLED: returned as the order, not as an error).
func (c *Client) PlaceStatus(ctx context.Context, req PlaceRequest, idemKey string, wait bool) (*Order, int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	u := strings.TrimSuffix(c.URL, "/") + PathOrders
	if wait {
		u += "?wait=true"
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	r.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		r.Header.Set(HeaderIdempotencyKey, idemKey)
	}
	var o Order
	status, err := c.do(r, &o)
	if err != nil {
		return nil, status, err
	}
	return &o, status, nil
}

// Get reads one order.
func (c *Client) Get(ctx context.Context, id int64) (*Order, error) {
	u := strings.TrimSuffix(c.URL, "/") + PathOrders + "/" + strconv.FormatInt(id, 10)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	var o Order
	if _, err := c.do(r, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// List reads the orders in status (all when empty).
func (c *Client) List(ctx context.Context, status Status) ([]*Order, error) {
	u := strings.TrimSuffix(c.URL, "/") + PathOrders
	if status != "" {
		u += "?status=" + url.QueryEscape(string(status))
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	var orders []*Order
	if _, err := c.do(r, &orders); err != nil {
		return nil, err
	}
	return orders, nil
}

func (c *Client) do(r *http.Request, out any) (int, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var p problem.Details
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if o, ok := out.(*Order); ok && resp.StatusCode == http.StatusConflict {
			// A refused order (TypeOrderRefused) is an answer, not an
			// error: it carries the cancelled order.
			var ref Refusal
			if json.Unmarshal(b, &ref) == nil && ref.Type == TypeOrderRefused && ref.Order != nil {
				*o = *ref.Order
				return resp.StatusCode, nil
			}
		}
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(b))
		}
		return resp.StatusCode, &HTTPError{Status: resp.StatusCode, Detail: p.Detail}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s %s: %w", r.Method, r.URL.Path, err)
	}
	return resp.StatusCode, nil
}
