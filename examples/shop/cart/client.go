package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/internal/termsafe"
)

// Client reads a cart service's queries over HTTP (what `dtx cart show`
// prints).
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

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+path, nil)
	if err != nil {
		return err
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
	if resp.StatusCode != http.StatusOK {
		var p problem.Details
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, p.Detail)
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
