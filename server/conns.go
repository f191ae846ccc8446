package server

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dtxhq/dtx/internal/problem"
)

// Connection limits. The http.Server that serves the API bounds reading
// (headers, bodies) and idle keep-alive connections; the Server bounds
// writing per request, so that the long-lived answers (the event stream,
// ?wait=true) get the time they need while every other answer must be
// written within the write timeout.
const (
	// DefaultWriteTimeout is how long an answer (or one event of a
	// stream) may take to write to a client that does not read.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxEventStreams bounds the concurrent GET /v1/events streams.
	DefaultMaxEventStreams = 64
	// DefaultMaxWaiters bounds the concurrent ?wait=true submissions.
	DefaultMaxWaiters = 1024
	// RetryAfter is the Retry-After (seconds) of a 503 refused for a
	// limit.
	RetryAfter = 5
)

// WithWriteTimeout bounds how long each answer may take to write, and each
// event of a stream (a client that stops reading is disconnected). A
// ?wait=true submission gets its wait on top. Zero or less keeps
// DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.writeTimeout = d
		}
	}
}

// WithMaxEventStreams bounds the concurrent event streams; past it GET
// /v1/events answers 503 with Retry-After. Zero or less keeps
// DefaultMaxEventStreams.
func WithMaxEventStreams(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.streams = make(chan struct{}, n)
		}
	}
}

// WithMaxWaiters bounds the concurrent ?wait=true submissions; past it such
// a submission is refused with 503 and Retry-After before anything is
// submitted. Zero or less keeps DefaultMaxWaiters.
func WithMaxWaiters(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.waiters = make(chan struct{}, n)
		}
	}
}

// WithAllowedHosts adds host names (without port, matched without regard
// to case) that requests may name in their Host header, besides IP
// addresses and localhost: the names clients reach the API by (a DNS
// name, a proxy's upstream name). Empty names are ignored.
func WithAllowedHosts(hosts ...string) Option {
	return func(s *Server) {
		for _, h := range hosts {
			if h = strings.TrimSpace(h); h != "" {
				s.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
			}
		}
	}
}

// hostRefused says why r's Host header is not one this server answers to,
// or "" if it is. Allowed: an IP literal, localhost (and *.localhost, which
// browsers resolve to loopback themselves), a configured name, or no Host
// at all (HTTP/1.0; browsers always send one). A web page on a name its
// attacker controls could otherwise point that name at 127.0.0.1 (DNS
// rebinding) and read and drive the API from the victim's browser as if
// same-origin.
func (s *Server) hostRefused(r *http.Request) string {
	if r.Host == "" {
		return ""
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") || s.hosts[host] {
		return ""
	}
	return fmt.Sprintf("host %q is not served here: use the IP address, localhost, or a name the coordinator was started with (--api-hosts)", r.Host)
}

// acquire takes a slot of sem without waiting; false if all are taken.
func acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func release(sem chan struct{}) { <-sem }

// tooBusy refuses a request for a reached limit: 503, Retry-After.
func tooBusy(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	problem.WriteType(w, http.StatusServiceUnavailable, problem.TypeTooBusy, detail)
}

// limitStreams serves h (the event stream) only while fewer than the
// maximum streams are open.
func (s *Server) limitStreams(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acquire(s.streams) {
			tooBusy(w, fmt.Sprintf("too many event streams (%d) are open; retry later", cap(s.streams)))
			return
		}
		defer release(s.streams)
		h.ServeHTTP(w, r)
	})
}

// extendDeadlines gives a long-lived answer its own deadlines: reading is
// over (the body was read, or there is none), so the server's read
// deadline must not cut the request short, and writing may take until
// write (zero: no deadline; the handler sets one per write).
func extendDeadlines(w http.ResponseWriter, write time.Time) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(write)
}
