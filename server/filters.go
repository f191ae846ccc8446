package server

import (
	"fmt"
	"net/url"
	"time"

	"github.com/dtxhq/dtx"
)

// MaxQuery bounds the q= search text of GET /v1/transactions.
const MaxQuery = 200

// listExtras reads the list filters beyond status, limit and before:
// pattern= (saga, tcc or xa), since= (RFC 3339: created at or after) and q=
// (a substring of the gid, e.g. an order id).
func listExtras(q url.Values, f *dtx.ListFilter) error {
	if v := q.Get("pattern"); v != "" {
		p := dtx.Pattern(v)
		if !p.SagaEngine() {
			return fmt.Errorf("pattern=%q: want saga, tcc or xa", v)
		}
		f.Pattern = p
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("since=%q: want an RFC 3339 time", v)
		}
		f.Since = t
	}
	if v := q.Get("q"); v != "" {
		if len(v) > MaxQuery {
			return fmt.Errorf("q: at most %d bytes", MaxQuery)
		}
		f.GIDContains = v
	}
	return nil
}
