// Package httptransport performs branch calls over HTTP: POST of the step's
// JSON payload with the Dtx-* headers, on a keep-alive connection pool, and
// classifies every answer into a dtx.Outcome by status code — never by
// message text:
//
//	2xx                          Success
//	3xx                          Unknown (the redirect is not followed: the participant did not
//	                             confirm, but a 303 may follow work it did; retried, then alerted)
//	401, 408, 425, 429, 5xx      Unknown (the participant may or may not have applied it;
//	                             401: it refused the call's signature, retried until keys agree)
//	other 4xx                    Failure (a definite business refusal: compensate)
//	transport error, timeout     Unknown
//	call refused (RefusedError)  Failure (nothing was sent)
//
// A call with a TraceParent carries it in the W3C traceparent header.
//
// Outbound calls are restricted (guard.go): redirects are never followed;
// URLs with credentials (user:password@) are refused; WithAllowlist limits
// the hosts, ports and URL prefixes that may be called (checked at
// submission, before each request, and on the addresses a host name
// resolves to when dialled, against DNS rebinding); WithSelf refuses calls
// to the coordinator's own API. The library default (New without options)
// allows any host: an embedded coordinator is driven by its application's
// own code. `dtx server` allows loopback participants only unless
// --allow-participants says otherwise. A client passed to New keeps its
// own round tripper; the dial check needs an *http.Transport.
//
// A transport built by New(nil) makes calls to plain http:// URLs on its
// own keep-alive pool (lean.go): the calling goroutine writes the request
// and reads the answer with net/http's parser, with none of the two
// goroutines per connection net/http's Transport hands every call through.
// HTTPS, non-ASCII host names and calls the environment sends through a
// proxy (HTTP_PROXY, NO_PROXY) go through net/http.
package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/traceparent"
)

var (
	_ dtx.Transport  = (*Transport)(nil)
	_ dtx.URLChecker = (*Transport)(nil)
)

// MaxResponseBody bounds how much of a response is read.
const MaxResponseBody = 1 << 20

// MaxResponseHeader bounds the status line and headers of a response (a
// participant's are a few hundred bytes).
const MaxResponseHeader = 1 << 20

// Transport is a dtx.Transport over HTTP.
type Transport struct {
	client *http.Client
	policy *policy
	signer *callsig.Signer // see WithSigner
	// lean carries http:// calls of a transport built by New(nil) without
	// net/http's per-connection goroutines (lean.go); nil for a client
	// passed to New.
	lean *lean
}

// New returns a transport. A nil client gets a pooled one tuned for many
// concurrent calls to few hosts. The client is copied: redirects are never
// followed, and the options restrict what may be called (without options,
// any host but none with credentials in its URL).
func New(client *http.Client, opts ...Option) *Transport {
	p := newPolicy(opts)
	own := client == nil
	if own {
		rt := NewRoundTripper()
		rt.Proxy = p.proxy
		client = &http.Client{Transport: rt}
	}
	t := &Transport{client: guarded(client, p), policy: p}
	if own {
		t.lean = newLean(p)
	}
	return t
}

// CheckURL accepts the URLs Call can call: absolute http or https URLs
// with a host, without credentials, allowed by the transport's options.
// The coordinator checks step URLs with it at submission.
func (t *Transport) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q must be http or https", raw)
	}
	if u.Hostname() == "" { // "http://:80" names a port but no host
		return fmt.Errorf("URL %q has no host", raw)
	}
	if err := t.policy.check(u); err != nil {
		if refused := (*RefusedError)(nil); errors.As(err, &refused) {
			return errors.New(refused.Reason)
		}
		return err
	}
	return nil
}

// DefaultMaxConns bounds the connections of NewRoundTripper: idle ones in
// all, and every one (in use, idle or dialing) per host. It matches the
// coordinator's default bound on concurrent calls (coordinator.MaxCalls);
// LimitConns lowers it to a coordinator's own bound.
const DefaultMaxConns = 256

// NewRoundTripper returns an http.Transport that keeps plenty of idle
// connections per participant host, so steady load reuses connections,
// within a bounded number of file descriptors (DefaultMaxConns).
func NewRoundTripper() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = DefaultMaxConns
	t.MaxIdleConnsPerHost = DefaultMaxConns
	t.MaxResponseHeaderBytes = MaxResponseHeader
	t.MaxConnsPerHost = DefaultMaxConns
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// LimitConns bounds the connection pool (the client's *http.Transport, as
// New(nil) builds it) to n: at most n connections per host (in use, idle or
// dialing) and at most n idle ones in all. A coordinator passes its bound
// on concurrent calls (coordinator.Config.MaxCalls), so that its calls and
// the connections they leave idle hold at most about 2n file descriptors.
// Call it before the first Call. It does nothing for n <= 0 or a client
// with another kind of RoundTripper.
func (t *Transport) LimitConns(n int) {
	next := t.client.Transport
	if g, ok := next.(*guard); ok {
		next = g.next
	}
	rt, ok := next.(*http.Transport)
	if !ok || n <= 0 {
		return
	}
	if t.lean != nil {
		t.lean.limit(n)
	}
	rt.MaxConnsPerHost = n
	rt.MaxIdleConns = min(rt.MaxIdleConns, n)
	rt.MaxIdleConnsPerHost = min(rt.MaxIdleConnsPerHost, n)
}

// StatusError is a non-2xx answer from a participant.
type StatusError struct {
	Code int
	// Detail is the problem+json "detail" (or "title"), else the body start.
	Detail string
	// URL is the step URL that was called.
	URL string
	// Misrouted: the answer is a 404 or 405 that is not a dtx
	// participant's (no problem+json body), so the URL most likely names
	// the wrong service or path. errors.Is(err, dtx.ErrMisrouted) reports it.
	Misrouted bool
}

// HTTPStatus is the participant's status code (the coordinator matches it
// against a step's retry.non_retryable_statuses).
func (e *StatusError) HTTPStatus() int { return e.Code }

func (e *StatusError) Error() string {
	if e.Misrouted {
		return fmt.Sprintf("%s answered %d (%v) [%s]", e.URL, e.Code, dtx.ErrMisrouted, dtx.TypeMisrouted)
	}
	if e.Detail == "" {
		return fmt.Sprintf("HTTP %d", e.Code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Code, e.Detail)
}

// Is reports a misrouted answer as dtx.ErrMisrouted.
func (e *StatusError) Is(target error) bool { return e.Misrouted && target == dtx.ErrMisrouted }

// Misrouted reports whether an answer with this status code and
// Content-Type comes from something other than a dtx participant: a 404 or
// 405 without an application/problem+json body, which the participant SDK
// sends with every refusal (Go's mux answers "404 page not found" as text).
func Misrouted(code int, contentType string) bool {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		return false
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt != "application/problem+json"
}

// Classify maps an HTTP status code to an outcome class.
func Classify(code int) dtx.Class {
	switch {
	case code >= 200 && code < 300:
		return dtx.Success
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests,
		code == http.StatusUnauthorized: // a refused signature: nothing ran; retry until the keys agree
		return dtx.Unknown
	case code >= 400 && code < 500:
		return dtx.Failure
	default:
		return dtx.Unknown
	}
}

// Call implements dtx.Transport.
func (t *Transport) Call(ctx context.Context, c dtx.Call) dtx.Outcome {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	body := c.Payload
	if len(body) == 0 {
		body = []byte("{}")
	}
	code, header, data, readErr, err := t.roundTrip(ctx, c, body)
	if err != nil {
		if errors.Is(err, errBuild) {
			// The URL was validated at submission; a failure here cannot be
			// fixed by retrying, but guessing "failure" could skip work that
			// must happen, so it stays unknown and alerts.
			return dtx.Uncertain(err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return dtx.Uncertain(fmt.Errorf("timeout after %v", c.Timeout))
		}
		if refused := (*RefusedError)(nil); errors.As(err, &refused) {
			return dtx.Failed(refused)
		}
		return dtx.Uncertain(err)
	}
	class := Classify(code)
	if class == dtx.Success {
		if readErr != nil {
			// The participant committed, but we could not read its answer.
			// Success is still certain from the status line.
			return dtx.Succeeded(nil)
		}
		return dtx.Succeeded(data)
	}
	serr := &StatusError{Code: code, Detail: answerDetail(code, header, data), URL: c.URL,
		Misrouted: Misrouted(code, header.Get("Content-Type"))}
	if class == dtx.Failure {
		return dtx.Failed(serr)
	}
	return dtx.Uncertain(serr)
}

// errBuild marks a request that could not be built.
var errBuild = errors.New("build request")

// roundTrip sends the call and reads its answer: the status code, headers,
// body (at most MaxResponseBody) and the error of reading the body, or the
// error that prevented an answer.
func (t *Transport) roundTrip(ctx context.Context, c dtx.Call, body []byte) (int, http.Header, []byte, error, error) {
	if t.lean != nil {
		u, err := url.Parse(c.URL)
		if err != nil {
			return 0, nil, nil, nil, fmt.Errorf("%w: %w", errBuild, err)
		}
		if t.leanable(u) {
			if err := t.policy.check(u); err != nil {
				return 0, nil, nil, nil, err
			}
			h := make(http.Header, 7)
			setCallHeaders(h, c)
			t.sign(h, c, body)
			ans, err := t.lean.roundTrip(ctx, u, h, body)
			if err != nil {
				return 0, nil, nil, nil, &url.Error{Op: "Post", URL: u.String(), Err: err}
			}
			return ans.code, ans.header, ans.body, ans.bodyErr, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, nil, fmt.Errorf("%w: %w", errBuild, err)
	}
	setCallHeaders(req.Header, c)
	t.sign(req.Header, c, body)
	resp, err := t.do(req)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	return resp.StatusCode, resp.Header, data, err, nil
}

// leanable reports whether u goes by the lean path: plain http to an ASCII
// host, with no proxy to go through (a restricted transport never uses one;
// otherwise the environment's HTTP_PROXY and NO_PROXY decide, as for
// net/http's default transport).
func (t *Transport) leanable(u *url.URL) bool {
	if u.Scheme != "http" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return u.User != nil && u.Scheme == "http" // refused by the policy check
	}
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= 0x80 {
			return false
		}
	}
	if t.policy.restricts() {
		return true
	}
	proxy, err := t.policy.proxy(&http.Request{URL: u})
	return err == nil && proxy == nil
}

// do sends req. A client without a timeout or cookie jar adds nothing to
// its round tripper for a call (redirects are answered, never followed), so
// the round tripper is called directly: http.Client.Do would copy the
// headers for redirects and arm a cancellation watcher per call. The error
// is wrapped as Client.Do wraps it.
func (t *Transport) do(req *http.Request) (*http.Response, error) {
	if t.client.Timeout != 0 || t.client.Jar != nil {
		return t.client.Do(req)
	}
	resp, err := t.client.Transport.RoundTrip(req)
	if err != nil {
		return nil, &url.Error{Op: "Post", URL: req.URL.String(), Err: err}
	}
	return resp, nil
}

// MaxDetail bounds the length in bytes of what Detail returns.
const MaxDetail = 1000

// maxTextDetail bounds the start of a body that is not a problem.
const maxTextDetail = 200

// Detail extracts the explanation of a non-2xx answer: its problem+json
// "detail" (or "title"), else the start of body as text. The result is
// valid UTF-8 without NUL bytes, at most MaxDetail bytes long (a body that
// is not a problem gives at most its first 200 bytes). Other transports
// that carry HTTP-like replies use it too.
func Detail(body []byte) string { return detail(body) }

func detail(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil {
		if p.Detail != "" {
			return shorten(p.Detail, MaxDetail)
		}
		if p.Title != "" {
			return shorten(p.Title, MaxDetail)
		}
	}
	return shorten(string(bytes.TrimSpace(body)), maxTextDetail)
}

// shorten makes text valid UTF-8 without NUL bytes and cuts it to at most
// max bytes, at a rune boundary.
func shorten(text string, max int) string {
	text = strings.ReplaceAll(strings.ToValidUTF8(text, "\uFFFD"), "\x00", "")
	if len(text) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return text
}

// traceparentKey is traceparent.Header in canonical form.
var traceparentKey = http.CanonicalHeaderKey(traceparent.Header)

// setCallHeaders sets the headers of a branch call. The keys are already
// canonical and the values share one backing array: one allocation instead
// of one per header (and no key canonicalisation) on the hot path.
func setCallHeaders(h http.Header, c dtx.Call) {
	vals := make([]string, 6)
	vals[0], vals[1], vals[2] = "application/json", c.GID, strconv.Itoa(c.Branch)
	vals[3], vals[4] = string(c.Op), strconv.Itoa(c.Attempt)
	h["Content-Type"] = vals[0:1:1]
	h[dtx.HeaderGID] = vals[1:2:2]
	h[dtx.HeaderBranch] = vals[2:3:3]
	h[dtx.HeaderOp] = vals[3:4:4]
	h[dtx.HeaderAttempt] = vals[4:5:5]
	if c.TraceParent != "" {
		vals[5] = c.TraceParent
		h[traceparentKey] = vals[5:6:6]
	}
}
