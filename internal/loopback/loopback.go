// Package loopback serves an HTTP handler on a free loopback port, for the
// in-process coordinators and participants of the demo and the benches.
package loopback

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves h on a free loopback port and returns its base URL and a
// function that shuts the server down (waiting up to 5s for requests).
func Serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
