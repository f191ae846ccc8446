package httptransport

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
)

// WithLookup replaces the resolver of dial-time checks (tests of DNS
// rebinding, which cannot change the system's resolver).
func WithLookup(f func(ctx context.Context, host string) ([]netip.Addr, error)) Option {
	return func(p *policy) { p.lookup = f }
}

// WithProxy replaces http.ProxyFromEnvironment for a transport built by
// New(nil) (the environment is read once per process and never proxies
// loopback).
func WithProxy(f func(*http.Request) (*url.URL, error)) Option {
	return func(p *policy) { p.proxy = f }
}
