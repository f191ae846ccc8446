package chaos

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// failover spreads the coordinator API over several coordinators, as a
// load balancer in front of them would: requests go round-robin, and one
// that cannot connect (the coordinator is down) goes to the next. A request
// that reached a coordinator is never sent to another: its outcome is
// unknown, and the caller decides (the order service resubmits).
type failover struct {
	backends []string // base URLs
	next     atomic.Uint32
	client   *http.Client
}

func newFailover(backends []string) *failover {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
	}
	return &failover{backends: backends, client: &http.Client{Transport: tr}}
}

func (f *failover) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	first := int(f.next.Add(1))
	var lastErr error
	for i := range f.backends {
		base := f.backends[(first+i)%len(f.backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := f.client.Do(req)
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // never reached it: safe to try another
			}
			break
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	http.Error(w, "no coordinator answered: "+errString(lastErr), http.StatusBadGateway)
}

func errString(err error) string {
	if err == nil {
		return "none configured"
	}
	return err.Error()
}
