// Package transport routes branch calls by the scheme of their URL, so one
// coordinator drives steps of several kinds: the wiring names, in one
// visible table, which transport serves which scheme, e.g.
//
//	h := httptransport.New(nil)
//	tr := transport.Schemes{"http": h, "https": h, "broker": bt}
//
// where bt is a *brokertransport.Transport. The transports themselves live
// in the packages below this one (transport/httptransport,
// transport/brokertransport).
package transport

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dtxhq/dtx"
)

var (
	_ dtx.Transport  = Schemes(nil)
	_ dtx.URLChecker = Schemes(nil)
)

// Schemes is a dtx.Transport that performs each call with the transport of
// its URL's scheme (the key, in lower case; the URL's scheme matches in any
// case). A call whose scheme no transport serves is an Unknown outcome,
// since nothing can perform it (retried, then alerted); CheckURL refuses
// such URLs at submission.
type Schemes map[string]dtx.Transport

// Call implements dtx.Transport.
func (s Schemes) Call(ctx context.Context, c dtx.Call) dtx.Outcome {
	t, err := s.route(c.URL)
	if err != nil {
		return dtx.Uncertain(err)
	}
	return t.Call(ctx, c)
}

// CheckURL implements dtx.URLChecker: it refuses a URL whose scheme no
// transport serves, and otherwise applies the rule of the transport that
// serves it, if that transport has one (it implements dtx.URLChecker).
func (s Schemes) CheckURL(raw string) error {
	t, err := s.route(raw)
	if err != nil {
		return err
	}
	if ch, ok := t.(dtx.URLChecker); ok {
		return ch.CheckURL(raw)
	}
	return nil
}

// route returns the transport of raw's scheme.
func (s Schemes) route(raw string) (dtx.Transport, error) {
	sch := scheme(raw)
	if sch == "" {
		return nil, fmt.Errorf("URL %q has no scheme", raw)
	}
	if t := s[sch]; t != nil {
		return t, nil
	}
	served := make([]string, 0, len(s))
	for k, t := range s {
		if t != nil {
			served = append(served, k)
		}
	}
	slices.Sort(served)
	return nil, fmt.Errorf("no transport for the scheme %q of URL %q (served: %s)", sch, raw, strings.Join(served, ", "))
}

// scheme returns the scheme of raw in lower case (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.', ended by ':'), or "" if it has none.
func scheme(raw string) string {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return strings.ToLower(raw[:i])
		default:
			return ""
		}
	}
	return ""
}
