// Package httptransport performs branch calls over HTTP: POST of the step's
// JSON payload with the Dtx-* headers, on a keep-alive connection pool, and
// classifies every answer into a dtx.Outcome by status code — never by
// message text:
//
//	2xx                       Success
//	408, 425, 429, 5xx        Unknown (the participant may or may not have applied it)
//	other 4xx                 Failure (a definite business refusal: compensate)
//	transport error, timeout  Unknown
//
// A call with a TraceParent carries it in the W3C traceparent header.
package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/traceparent"
)

var (
	_ dtx.Transport  = (*Transport)(nil)
	_ dtx.URLChecker = (*Transport)(nil)
)

// MaxResponseBody bounds how much of a response is read.
const MaxResponseBody = 1 << 20

// Transport is a dtx.Transport over HTTP.
type Transport struct {
	client *http.Client
}

// New returns a transport. A nil client gets a pooled one tuned for many
// concurrent calls to few hosts.
func New(client *http.Client) *Transport {
	if client == nil {
		client = &http.Client{Transport: NewRoundTripper()}
	}
	return &Transport{client: client}
}

// CheckURL accepts the URLs Call can call: absolute http or https URLs
// with a host. The coordinator checks step URLs with it at submission.
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
	return nil
}

// NewRoundTripper returns an http.Transport that keeps plenty of idle
// connections per participant host, so steady load reuses connections.
func NewRoundTripper() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// StatusError is a non-2xx answer from a participant.
type StatusError struct {
	Code int
	// Detail is the problem+json "detail" (or "title"), else the body start.
	Detail string
}

func (e *StatusError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("HTTP %d", e.Code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Code, e.Detail)
}

// Classify maps an HTTP status code to an outcome class.
func Classify(code int) dtx.Class {
	switch {
	case code >= 200 && code < 300:
		return dtx.Success
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		// The URL was validated at submission; a failure here cannot be
		// fixed by retrying, but guessing "failure" could skip work that
		// must happen, so it stays unknown and alerts.
		return dtx.Uncertain(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(dtx.HeaderGID, c.GID)
	req.Header.Set(dtx.HeaderBranch, strconv.Itoa(c.Branch))
	req.Header.Set(dtx.HeaderOp, string(c.Op))
	req.Header.Set(dtx.HeaderAttempt, strconv.Itoa(c.Attempt))
	if c.TraceParent != "" {
		req.Header.Set(traceparent.Header, c.TraceParent)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return dtx.Uncertain(fmt.Errorf("timeout after %v", c.Timeout))
		}
		return dtx.Uncertain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	class := Classify(resp.StatusCode)
	if class == dtx.Success {
		if err != nil {
			// The participant committed, but we could not read its answer.
			// Success is still certain from the status line.
			return dtx.Succeeded(nil)
		}
		return dtx.Succeeded(data)
	}
	serr := &StatusError{Code: resp.StatusCode, Detail: detail(data)}
	if class == dtx.Failure {
		return dtx.Failed(serr)
	}
	return dtx.Uncertain(serr)
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
