package cart

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
	"time"

	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/internal/termsafe"
)

// Client calls a cart service over HTTP: its commands (the demo's load)
// and its queries (what `dtx cart show` prints). Commands send no
// If-Match: the service resolves races itself.
type Client struct {
	// URL is the cart service's base URL.
	URL string
	// HTTP defaults to http.DefaultClient.
	HTTP *http.Client
}

// Stream returns the events of cart id.
func (c *Client) Stream(ctx context.Context, id string) (StreamView, error) {
	var v StreamView
	err := c.get(ctx, "/carts/"+url.PathEscape(id)+"/events", &v)
	return v, err
}

// Projections returns the lag of the service's projections.
func (c *Client) Projections(ctx context.Context) ([]LagView, error) {
	var v []LagView
	err := c.get(ctx, "/projections", &v)
	return v, err
}

// Create opens a cart (id empty: the service picks one).
func (c *Client) Create(ctx context.Context, id string, userID int64) (Cart, error) {
	var out Cart
	err := c.do(ctx, http.MethodPost, "/carts", CreateRequest{ID: id, UserID: userID}, &out)
	return out, err
}

// AddItem adds quantity of product to cart id.
func (c *Client) AddItem(ctx context.Context, id string, product, quantity int64) (Cart, error) {
	var out Cart
	err := c.do(ctx, http.MethodPost, "/carts/"+url.PathEscape(id)+"/items", ItemRequest{ProductID: product, Quantity: quantity}, &out)
	return out, err
}

// RemoveItem removes product from cart id.
func (c *Client) RemoveItem(ctx context.Context, id string, product int64) (Cart, error) {
	var out Cart
	err := c.do(ctx, http.MethodDelete, "/carts/"+url.PathEscape(id)+"/items/"+strconv.FormatInt(product, 10), nil, &out)
	return out, err
}

// AddShipping sets cart id's shipping info.
func (c *Client) AddShipping(ctx context.Context, id string, sh Shipping) (Cart, error) {
	var out Cart
	err := c.do(ctx, http.MethodPut, "/carts/"+url.PathEscape(id)+"/shipping", sh, &out)
	return out, err
}

// Checkout checks cart id out (idempotent) and returns the cart and its
// order.
func (c *Client) Checkout(ctx context.Context, id string) (CheckoutResult, error) {
	var out CheckoutResult
	err := c.do(ctx, http.MethodPost, "/carts/"+url.PathEscape(id)+"/checkout", nil, &out)
	return out, err
}

// Get folds cart id's events into its state.
func (c *Client) Get(ctx context.Context, id string) (Cart, error) {
	var out Cart
	err := c.get(ctx, "/carts/"+url.PathEscape(id), &out)
	return out, err
}

// HTTPError is a non-2xx answer of the cart service.
type HTTPError struct {
	Method, Path string
	Status       int
	Detail       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Detail)
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p problem.Details
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(b))
		}
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Detail: p.Detail}
	}
	return json.Unmarshal(b, out)
}

// WriteStream writes a stream's events, one a line, then each
// projection's lag, for people.
func WriteStream(w io.Writer, s StreamView, lags []LagView) {
	fmt.Fprintf(w, "stream %s, version %d\n", termsafe.String(s.Stream), s.Version)
	for _, e := range s.Events {
		fmt.Fprintf(w, "  v%-3d #%-6d %s  %-18s %s\n", e.Version, e.Position, e.RecordedAt.UTC().Format(time.RFC3339), termsafe.String(e.Type), termsafe.String(string(e.Data)))
	}
	for _, l := range lags {
		fmt.Fprintf(w, "projection %s: checkpoint %d of %d, %d events behind", l.Name, l.Checkpoint, l.Head, l.Events)
		if l.Events > 0 {
			fmt.Fprintf(w, " (oldest %s ago)", time.Duration(l.BehindMS)*time.Millisecond)
		}
		if l.Failures > 0 {
			fmt.Fprintf(w, ", %d failed batches, last: %s", l.Failures, termsafe.String(l.LastError))
		}
		fmt.Fprintln(w)
	}
}
