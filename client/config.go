package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Sentinels an *APIError matches with errors.Is (the dtx ones, repeated
// here so a caller of this package finds them).
var (
	// ErrNotFound: the coordinator has no transaction with that gid.
	ErrNotFound = dtx.ErrNotFound
	// ErrConflict: a gid reused with other content, or an action the
	// transaction's state refuses (abort of a finished one, say).
	ErrConflict = dtx.ErrConflict
	// ErrInvalid: the coordinator refused the request as malformed (400);
	// the error's Detail names the field and the rule.
	ErrInvalid = dtx.ErrInvalid
)

// Defaults of Config.
const (
	// DefaultTimeout bounds one request (Wait's requests get their wait on
	// top).
	DefaultTimeout = 30 * time.Second
	// DefaultWaitTimeout is how long one of Wait's requests asks the
	// coordinator to hold its answer; Wait asks again until ctx is done.
	DefaultWaitTimeout = 60 * time.Second
	// MaxWaitTimeout is the longest wait the coordinator grants.
	MaxWaitTimeout = 5 * time.Minute
)

// Config configures a Client (see NewClient). A zero field takes its
// default; only URL is required.
type Config struct {
	// URL is the coordinator's base URL, e.g. "http://127.0.0.1:8480".
	URL string
	// HTTPClient sends the requests (nil: a keep-alive pooled client).
	HTTPClient *http.Client
	// Token, when set, is sent as "Authorization: Bearer <token>": admin
	// actions (Abort, Retry) need it, and a coordinator with an admin
	// token shows participants' error details only to its holders.
	Token string
	// Timeout bounds one request (DefaultTimeout). Wait's requests get
	// WaitTimeout on top.
	Timeout time.Duration
	// WaitTimeout is how long one of Wait's requests lets the coordinator
	// hold its answer (DefaultWaitTimeout, at most MaxWaitTimeout).
	WaitTimeout time.Duration
}

// Validate reports the first field of c that is unusable, naming it.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New(`client: Config.URL is empty; want the coordinator's base URL, e.g. "http://127.0.0.1:8480"`)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf(`client: Config.URL %q: want an absolute http:// or https:// URL, e.g. "http://127.0.0.1:8480"`, c.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("client: Config.URL %q: want no query or fragment", c.URL)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("client: Config.Timeout is %v; want 0 (default %v) or more", c.Timeout, DefaultTimeout)
	}
	if c.WaitTimeout < 0 || c.WaitTimeout > MaxWaitTimeout {
		return fmt.Errorf("client: Config.WaitTimeout is %v; want 0 (default %v) up to %v", c.WaitTimeout, DefaultWaitTimeout, MaxWaitTimeout)
	}
	return nil
}

// New returns a client for the coordinator cfg names, or the error
// of cfg.Validate.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: httptransport.NewRoundTripper()}
	}
	c := &Client{base: strings.TrimRight(cfg.URL, "/"), hc: hc, AdminToken: cfg.Token,
		timeout: cfg.Timeout, WaitTimeout: cfg.WaitTimeout}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	return c, nil
}

// StartSaga submits spec and returns at once with its first state (the
// coordinator has stored it and drives it); Wait gives the outcome.
// Resubmitting the same gid and content is idempotent; other content under
// the same gid fails with an error matching ErrConflict.
func (c *Client) StartSaga(ctx context.Context, spec saga.Spec) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/sagas", &spec, false)
}

// StartTCC submits a TCC transaction; like StartSaga otherwise.
func (c *Client) StartTCC(ctx context.Context, spec tcc.Spec) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/tcc", &spec, false)
}

// StartXA submits a two-phase commit transaction (its tries prepare XA
// branches, see package participant/xa); like StartSaga otherwise.
func (c *Client) StartXA(ctx context.Context, spec tcc.Spec) (*dtx.TxDetail, error) {
	return c.submit(ctx, "/v1/xa", &spec, false)
}

// Wait returns the transaction gid once it has finished (succeeded or
// failed: look at Status and Reason). It asks the coordinator to hold each
// answer up to WaitTimeout and asks again until ctx is done; then it returns
// the latest state it read (or nil) with ctx's error. A gid the coordinator
// does not know fails at once with an error matching ErrNotFound.
func (c *Client) Wait(ctx context.Context, gid string) (*dtx.TxDetail, error) {
	var last *dtx.TxDetail
	for {
		waitFor := c.WaitTimeout
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < waitFor {
				waitFor = max(left, time.Millisecond)
			}
		}
		var out dtx.TxDetail
		path := "/v1/transactions/" + url.PathEscape(gid) + "?wait=true&timeout=" + url.QueryEscape(waitFor.String())
		err := c.doFor(ctx, waitFor+c.requestTimeout(), http.MethodGet, path, nil, &out)
		switch {
		case err == nil:
			last = &out
			if out.Status.Terminal() {
				return last, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		default:
			return last, err
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
	}
}

func (c *Client) requestTimeout() time.Duration {
	if c.timeout > 0 {
		return c.timeout
	}
	return DefaultTimeout
}
