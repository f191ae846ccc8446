package httptransport

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// Option configures a Transport (see New).
type Option func(*policy)

// WithAllowlist restricts calls to the participants a allows, checked at
// submission (CheckURL), before each request and, for host names, on the
// addresses they resolve to when a connection is dialled. A nil a (the
// default of New) allows any host.
func WithAllowlist(a *Allowlist) Option { return func(p *policy) { p.allow = a } }

// WithSelf names the address the coordinator's own API listens on
// ("host:port", e.g. the listener's Addr().String()): a step URL whose
// host is a local address (loopback, unspecified, any interface address,
// localhost or this machine's name) with that port is refused at
// submission and when dialled, so a submitter cannot make the coordinator
// call its own admin API.
func WithSelf(addr string) Option {
	return func(p *policy) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return
		}
		p.selfPort = port
		p.selfIPs = localIPs()
		if h, err := os.Hostname(); err == nil {
			p.selfName = strings.ToLower(h)
		}
	}
}

// RefusedError is a call the transport refused to make: credentials in
// the URL, a host outside the allowlist, or the coordinator itself. Call
// reports it as a Failure: the participant was certainly not called.
type RefusedError struct {
	// Reason says why, naming the URL without its password.
	Reason string
}

func (e *RefusedError) Error() string { return "call refused: " + e.Reason }

// policy is what a Transport may call.
type policy struct {
	allow    *Allowlist
	selfPort string
	selfIPs  []netip.Addr
	selfName string
	// lookup resolves host names at dial time (tests replace it).
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// proxy is the proxy of an unrestricted transport built by New(nil):
	// http.ProxyFromEnvironment (tests replace it, since the environment
	// is read once per process and never proxies loopback).
	proxy func(*http.Request) (*url.URL, error)
}

func newPolicy(opts []Option) *policy {
	p := &policy{lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}, proxy: http.ProxyFromEnvironment}
	for _, o := range opts {
		o(p)
	}
	return p
}

// restricts reports whether dials need checking.
func (p *policy) restricts() bool { return p.allow != nil || p.selfPort != "" }

// check says why u may not be called, or returns nil.
func (p *policy) check(u *url.URL) error {
	if u.User != nil {
		return &RefusedError{fmt.Sprintf("URL %q carries credentials (user:password@): pass them in the payload or configure the participant, never in a step URL", u.Redacted())}
	}
	host, port := splitHost(u)
	if ip, err := netip.ParseAddr(host); err == nil {
		if p.isSelfIP(ip, port) {
			return p.selfRefusal(u)
		}
	} else if p.isSelfName(host, port) {
		return p.selfRefusal(u)
	}
	if !p.allow.allows(u) {
		return &RefusedError{fmt.Sprintf("URL %q is not an allowed participant (dtx server --allow-participants)", u.Redacted())}
	}
	return nil
}

func (p *policy) selfRefusal(u *url.URL) error {
	return &RefusedError{fmt.Sprintf("URL %q points at the coordinator itself (port %s)", u.Redacted(), p.selfPort)}
}

func (p *policy) isSelfIP(ip netip.Addr, port string) bool {
	if p.selfPort == "" || port != p.selfPort {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	for _, l := range p.selfIPs {
		if l == ip {
			return true
		}
	}
	return false
}

func (p *policy) isSelfName(host, port string) bool {
	if p.selfPort == "" || port != p.selfPort {
		return false
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || (p.selfName != "" && host == p.selfName)
}

// dialContext is the signature of http.Transport.DialContext.
type dialContext func(ctx context.Context, network, addr string) (net.Conn, error)

// dial wraps next: a host name is resolved here and each of its addresses
// checked before any is dialled (so a name that resolves to a forbidden
// address, e.g. by DNS rebinding, is refused), and no connection goes to
// the coordinator itself.
func (p *policy) dial(next dialContext) dialContext {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if p.isSelfIP(ip, port) {
				return nil, &RefusedError{fmt.Sprintf("%s is the coordinator itself", addr)}
			}
			return next(ctx, network, addr)
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if p.isSelfName(host, port) {
			return nil, &RefusedError{fmt.Sprintf("%s is the coordinator itself", addr)}
		}
		ips, err := p.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			ip = ip.WithZone("").Unmap()
			if p.isSelfIP(ip, port) {
				return nil, &RefusedError{fmt.Sprintf("%s resolves to %s, the coordinator itself", addr, ip)}
			}
			if p.allow != nil && special(ip) && !p.allow.allowsIP(ip) {
				return nil, &RefusedError{fmt.Sprintf("%s resolves to %s, which no IP rule of the participant allowlist allows", addr, ip)}
			}
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%s: no address", host)
		}
		var lastErr error
		for _, ip := range ips {
			c, err := next(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}

// guard is the round tripper of a Transport: it checks every request's
// URL against the policy before passing it on (stored transactions may
// predate the current allowlist).
type guard struct {
	p    *policy
	next http.RoundTripper
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.p.check(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.next.RoundTrip(req)
}

// guarded returns a copy of client that never follows redirects and whose
// requests (and, for an http.Transport, dials) go through p.
func guarded(client *http.Client, p *policy) *http.Client {
	c := *client
	// A redirect is answered, never followed: following would replay the
	// POST to a host the allowlist never saw.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if ht, ok := rt.(*http.Transport); ok && p.restricts() {
		ht = ht.Clone()
		next := ht.DialContext
		if next == nil {
			next = (&net.Dialer{}).DialContext
		}
		ht.DialContext = p.dial(next)
		// A proxy would be dialled instead of the participant, and would
		// reach hosts the dial check never sees.
		ht.Proxy = nil
		rt = ht
	}
	c.Transport = &guard{p: p, next: rt}
	return &c
}

// answerDetail is the Detail of a non-2xx answer.
func answerDetail(code int, header http.Header, body []byte) string {
	if code >= 300 && code < 400 {
		loc := header.Get("Location")
		if len(loc) > 200 {
			loc = loc[:200]
		}
		return fmt.Sprintf("redirect to %q not followed (a participant must answer the call itself)", strings.ToValidUTF8(loc, "\uFFFD"))
	}
	return detail(body)
}

// localIPs lists this machine's interface addresses.
func localIPs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ips = append(ips, ip.Unmap())
			}
		}
	}
	return ips
}
