package httptransport

import (
	"context"
	"net/netip"
)

// WithLookup replaces the resolver of dial-time checks (tests of DNS
// rebinding, which cannot change the system's resolver).
func WithLookup(f func(ctx context.Context, host string) ([]netip.Addr, error)) Option {
	return func(p *policy) { p.lookup = f }
}
