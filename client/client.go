// Package client is the Go SDK for the coordinator's HTTP API: start
// sagas, TCC and XA transactions, wait for their outcome, inspect, retry
// and abort them. The bodies it sends and receives are those of package
// api.
//
//	c, err := client.New(client.Config{URL: "http://127.0.0.1:8480"})
//	tx, err := c.StartSaga(ctx, spec) // spec from saga.New(gid).Step(...).Build()
//	tx, err = c.Wait(ctx, tx.GID)     // tx.Status: succeeded or failed
//
// A 4xx answer is an *APIError (status, problem type, detail) that matches
// ErrNotFound, ErrConflict and ErrInvalid with errors.Is.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

type traceKey struct{}

// WithTraceParent returns a context whose submissions carry tp (a W3C
// traceparent header value) so that the transaction's branch calls join
// that trace. An invalid tp is ignored by the coordinator. Without it, a
// submission carries the OpenTelemetry span context of its ctx, if any.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceKey{}, tp)
}

func traceparentFrom(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// Client talks to one coordinator. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	// WaitTimeout bounds server-side waiting for SubmitSaga(wait=true)
	// (default 60s).
	WaitTimeout time.Duration
	// timeout bounds one request (0: none, as ForURL leaves it).
	timeout time.Duration
	// AdminToken, when set, is sent as "Authorization: Bearer <token>"
	// with every request: admin actions (Abort, Retry) need it, and a
	// coordinator with an admin token shows participants' error details
	// (in reads and in the answers to submissions) only to its holders.
	AdminToken string
}

// ForURL returns a client for the coordinator at baseURL (e.g.
// "http://127.0.0.1:8480") without checking it. A nil hc gets a keep-alive
// pooled client. Requests are bounded only by their context and hc.
//
// New, with a Config that is validated and per-request timeouts, is the
// usual way; ForURL is the shorthand for tests and tools.
func ForURL(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: httptransport.NewRoundTripper()}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, WaitTimeout: 60 * time.Second}
}

// APIError is a non-2xx answer from the coordinator; get it with
// errors.As to read the status, problem type and detail. It matches the dtx
// sentinels with errors.Is (409 → dtx.ErrConflict, 400 → dtx.ErrInvalid,
// and 404 → dtx.ErrNotFound only when the coordinator says the transaction
// does not exist: a 404 from a wrong URL or a proxy is not "no such
// transaction").
type APIError struct {
	Status int
	// Type is the problem type of the answer (RFC 9457), if any.
	Type   string
	Detail string
}

func (e *APIError) Error() string { return fmt.Sprintf("coordinator: HTTP %d: %s", e.Status, e.Detail) }

// Is implements errors.Is matching on the status class.
func (e *APIError) Is(target error) bool {
	switch e.Status {
	case http.StatusNotFound:
		return target == dtx.ErrNotFound && e.Type == problem.TypeTransactionNotFound
	case http.StatusConflict:
		return target == dtx.ErrConflict
	case http.StatusBadRequest:
		return target == dtx.ErrInvalid
	}
	return false
}

// SubmitSaga submits spec. With wait, the call returns once the saga has
// finished (or the wait timeout passed: the returned state is then still
// running). Resubmitting the same gid and content is idempotent.
//
// Deprecated: use StartSaga, then Wait.
func (c *Client) SubmitSaga(ctx context.Context, spec saga.Spec, wait bool) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/sagas", &spec, wait)
}

// SubmitTCC submits a TCC transaction; like SubmitSaga otherwise.
//
// Deprecated: use StartTCC, then Wait.
func (c *Client) SubmitTCC(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/tcc", &spec, wait)
}

// SubmitXA submits a two-phase commit transaction: the tries prepare XA
// branches (package participant/xa), in participant order; like SubmitTCC
// otherwise.
//
// Deprecated: use StartXA, then Wait.
func (c *Client) SubmitXA(ctx context.Context, spec tcc.Spec, wait bool) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/xa", &spec, wait)
}

func (c *Client) submit(ctx context.Context, path string, spec any, wait bool) (*dtx.TxDetail, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode transaction: %w", err)
	}
	timeout := c.timeout
	if wait {
		path += "?wait=true&timeout=" + url.QueryEscape(c.WaitTimeout.String())
		if timeout > 0 {
			timeout += c.WaitTimeout
		}
	}
	var out dtx.TxDetail
	if err := c.doFor(ctx, timeout, http.MethodPost, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get returns a transaction with its branches and history.
func (c *Client) Get(ctx context.Context, gid string) (*dtx.TxDetail, error) {
	var out dtx.TxDetail
	if err := c.do(ctx, http.MethodGet, "/v1/transactions/"+url.PathEscape(gid), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns a page of transaction summaries (api.TxSummary: no spec;
// Get has the full record), newest first, plus counts by status.
func (c *Client) List(ctx context.Context, f dtx.ListFilter) (*api.ListResponse, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	if !f.Before.IsZero() {
		q.Set("before", f.Before.Format(time.RFC3339Nano))
	}
	if f.Pattern != "" {
		q.Set("pattern", string(f.Pattern))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if f.GIDContains != "" {
		q.Set("q", f.GIDContains)
	}
	var out api.ListResponse
	if err := c.do(ctx, http.MethodGet, "/v1/transactions?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Abort asks a running saga to compensate (an admin action: it needs
// AdminToken).
func (c *Client) Abort(ctx context.Context, gid, reason string) (*dtx.TxDetail, error) {
	out, err := c.AbortWith(ctx, gid, api.AbortRequest{Reason: reason})
	if err != nil {
		return nil, err
	}
	return &out.TxDetail, nil
}

// AbortWith sends an abort request (an admin action: it needs AdminToken).
// With req.Force (and req.Operator) it stops any unfinished transaction
// without compensating, marks it failed and returns the branches left for a
// human in Unresolved; see api.AbortRequest. It fails with an *APIError of
// status 409 when the transaction is finished, past its pivot (without
// Force) or driven by another coordinator.
func (c *Client) AbortWith(ctx context.Context, gid string, req api.AbortRequest) (*api.AbortResponse, error) {
	body, _ := json.Marshal(req)
	var out api.AbortResponse
	if err := c.do(ctx, http.MethodPost, "/v1/transactions/"+url.PathEscape(gid)+"/abort", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Retry makes a transaction waiting on backoff call its pending operations
// now (an admin action: it needs AdminToken), and returns the transaction
// and how many calls waiting on backoff were released. It fails with an *APIError
// matching dtx.ErrNotFound, or with status 409 when the transaction is
// finished or driven by another coordinator.
func (c *Client) Retry(ctx context.Context, gid string) (*api.RetryResponse, error) {
	var out api.RetryResponse
	if err := c.do(ctx, http.MethodPost, "/v1/transactions/"+url.PathEscape(gid)+"/retry", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AttentionFilter selects transactions for Attention. Zero fields take the
// server's defaults (5 calls, 5 minutes, 100); MinAttempts or OlderThan < 0
// turns that criterion off.
type AttentionFilter struct {
	MinAttempts int
	OlderThan   time.Duration
	Limit       int
}

// Attention lists unfinished transactions with an operation still pending
// after MinAttempts calls, or older than OlderThan, oldest first, each with
// the reasons it is listed.
func (c *Client) Attention(ctx context.Context, f AttentionFilter) (*api.AttentionResponse, error) {
	q := url.Values{}
	switch {
	case f.MinAttempts > 0:
		q.Set("min_attempts", fmt.Sprint(f.MinAttempts))
	case f.MinAttempts < 0:
		q.Set("min_attempts", "0")
	}
	switch {
	case f.OlderThan > 0:
		q.Set("older_than", f.OlderThan.String())
	case f.OlderThan < 0:
		q.Set("older_than", "0")
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var out api.AttentionResponse
	if err := c.do(ctx, http.MethodGet, "/v1/attention?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health checks that the coordinator answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	return c.doFor(ctx, c.timeout, method, path, body, out)
}

// doFor is do with the request bounded by timeout (0: by ctx only).
func (c *Client) doFor(ctx context.Context, timeout time.Duration, method, path string, body []byte, out any) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	}
	setTraceContext(ctx, req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var p problem.Details
		json.Unmarshal(data, &p)
		if p.Detail == "" {
			p.Detail = p.Title
		}
		if p.Detail == "" {
			p.Detail = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Type: p.Type, Detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
