package httptransport

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Allowlist names the participants a Transport may call. Each rule is one
// of (written as in --allow-participants, comma-separated):
//
//   - any host (the other checks still apply)
//     127.0.0.1, ::1, [::1]      one IP address, any port
//     10.0.0.0/8, fd00::/8       a network (CIDR), any port
//     shop.internal              one host name, any port
//     *.shop.internal            every subdomain of shop.internal
//     shop.internal:8080         a host name or IP ([::1]:8080) and port
//     https://pay.example/api/   a URL prefix: scheme, host and port, and path
//
// A step URL is allowed when one rule matches its host (and port, and path
// for a URL prefix). Host names are matched as written, never resolved at
// submission; when called, a host name that resolves to a loopback,
// link-local, multicast or unspecified address is refused unless an IP or
// network rule allows that address (DNS rebinding).
type Allowlist struct {
	rules []rule
}

type rule struct {
	raw    string
	any    bool
	prefix netip.Prefix // an IP or network rule (valid when set)
	name   string       // a host name, lower case; "*.x" matches subdomains of x
	port   string       // "" any port
	scheme string       // URL prefix rules: the scheme...
	path   string       // ...and the path prefix ("" or ending in "/")
}

// LoopbackOnly is the allowlist of `dtx server` when --allow-participants
// is empty: 127.0.0.0/8, ::1 and localhost, any port.
func LoopbackOnly() *Allowlist {
	a, err := ParseAllowlist("127.0.0.0/8,::1,localhost")
	if err != nil {
		panic(err)
	}
	return a
}

// ParseAllowlist parses a comma-separated list of rules (see Allowlist).
// An empty list or entry is an error.
func ParseAllowlist(list string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return nil, fmt.Errorf("participant allowlist %q: empty entry", list)
		}
		r, err := parseRule(raw)
		if err != nil {
			return nil, fmt.Errorf("participant allowlist entry %q: %v", raw, err)
		}
		a.rules = append(a.rules, r)
	}
	return a, nil
}

// String returns the rules, comma-separated.
func (a *Allowlist) String() string {
	if a == nil {
		return "*"
	}
	s := make([]string, len(a.rules))
	for i, r := range a.rules {
		s[i] = r.raw
	}
	return strings.Join(s, ",")
}

func parseRule(raw string) (rule, error) {
	r := rule{raw: raw}
	if raw == "*" {
		r.any = true
		return r, nil
	}
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return r, errors.New("a URL prefix must be an absolute http or https URL")
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return r, errors.New("a URL prefix has no credentials, query or fragment")
		}
		host, port := splitHost(u)
		r.scheme, r.port = u.Scheme, port
		if ip, err := netip.ParseAddr(host); err == nil {
			r.prefix = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		} else {
			r.name = host
		}
		p := u.Path
		if hasDotSegment(p) {
			return r, errors.New("a URL prefix has no . or .. path segments")
		}
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		r.path = p
		return r, nil
	}
	if p, err := netip.ParsePrefix(raw); err == nil {
		r.prefix = p.Masked()
		if p.Addr().Is4In6() {
			return r, errors.New("write an IPv4 network in IPv4 form")
		}
		return r, nil
	}
	host, port := raw, ""
	if h, p, ok := splitHostPortLoose(raw); ok {
		host, port = h, p
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ip = ip.Unmap()
		r.prefix, r.port = netip.PrefixFrom(ip, ip.BitLen()), port
		return r, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !validName(strings.TrimPrefix(name, "*.")) {
		return r, errors.New("want *, an IP, a CIDR network, a host name, host:port or an http(s) URL prefix")
	}
	r.name, r.port = name, port
	return r, nil
}

// splitHostPortLoose splits "host:port" and "[v6]:port"; a bare IPv6
// address (several colons, no brackets) has no port.
func splitHostPortLoose(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || (strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[")) {
		return "", "", false
	}
	host, port = s[:i], s[i+1:]
	if !validPort(port) {
		return "", "", false
	}
	return strings.Trim(host, "[]"), port, true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// splitHost returns u's host (lower case, without brackets or a trailing
// dot) and port (the scheme's default when absent).
func splitHost(u *url.URL) (host, port string) {
	host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port = u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return host, port
}

// hasDotSegment reports whether p has a "." or ".." segment, which a
// participant may resolve to a path outside a URL prefix.
func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// allows reports whether a rule of a matches u (a nil list allows all).
func (a *Allowlist) allows(u *url.URL) bool {
	if a == nil {
		return true
	}
	host, port := splitHost(u)
	ip, ipErr := netip.ParseAddr(host)
	for _, r := range a.rules {
		switch {
		case r.any:
			return true
		case r.port != "" && r.port != port:
			continue
		case r.scheme != "" && !strings.EqualFold(r.scheme, u.Scheme):
			continue
		case r.prefix.IsValid():
			if ipErr != nil || !r.prefix.Contains(ip.WithZone("").Unmap()) {
				continue
			}
		case strings.HasPrefix(r.name, "*."):
			if !strings.HasSuffix(host, r.name[1:]) {
				continue
			}
		case r.name != host:
			continue
		}
		if r.path != "" {
			p := u.Path
			if hasDotSegment(p) || !strings.HasPrefix(p+"/", r.path) {
				continue
			}
		}
		return true
	}
	return false
}

// allowsIP reports whether an IP or network rule (or *) allows ip: what a
// host name must resolve to when the address is special.
func (a *Allowlist) allowsIP(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	for _, r := range a.rules {
		if r.any || r.prefix.IsValid() && r.path == "" && r.prefix.Contains(ip) {
			return true
		}
	}
	return false
}

// special reports whether ip is an address a public host name has no
// business resolving to.
func special(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}
