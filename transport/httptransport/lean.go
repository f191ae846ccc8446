package httptransport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// lean is the call path of a Transport built by New(nil) for http:// URLs:
// the calling goroutine takes a kept-alive connection from its pool (or
// dials one), writes the whole request in one write, reads the answer and
// puts the connection back. net/http's Transport costs two goroutines per
// connection (a write loop and a read loop) and hand-offs between them and
// the caller on every call; here there are none.
type lean struct {
	dial        dialContext
	idleTimeout time.Duration

	mu        sync.Mutex
	maxConns  int // per host: in use, idle or dialing
	maxIdle   int // idle in all
	idleAll   int
	hosts     map[string]*hostPool
	lastSweep time.Time
}

type hostPool struct {
	total   int              // in use, idle or dialing
	idle    []*leanConn      // oldest first
	waiters []chan *leanConn // a nil conn hands over a slot to dial
}

type leanConn struct {
	net.Conn
	idleSince time.Time
	read      int64 // bytes read in the current call
	// limit, when positive, bounds read: the answer's head is being read.
	limit int64
	// probe is the connection's check for bytes or a close that arrived
	// while it was idle (probe_unix.go); nil where there is none.
	probe func() bool
}

// errHeadTooLarge is an answer whose status line and headers pass
// MaxResponseHeader.
var errHeadTooLarge = fmt.Errorf("answer head larger than %d bytes", MaxResponseHeader)

func (c *leanConn) Read(p []byte) (int, error) {
	if c.limit > 0 {
		if c.read >= c.limit {
			return 0, errHeadTooLarge
		}
		if rest := c.limit - c.read; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

func newLeanConn(nc net.Conn) *leanConn {
	c := &leanConn{Conn: nc}
	c.probe = prober(nc)
	return c
}

// idleQuiet reports whether nothing arrived on an idle connection (no
// close by the participant, no stray bytes such as a 408): only then may
// it carry a request.
func (c *leanConn) idleQuiet() bool {
	return c.probe == nil || c.probe()
}

func newLean(p *policy) *lean {
	var d dialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if p.restricts() {
		d = p.dial(d)
	}
	return &lean{dial: d, idleTimeout: 90 * time.Second, maxConns: DefaultMaxConns, maxIdle: DefaultMaxConns,
		hosts: map[string]*hostPool{}}
}

func (l *lean) limit(n int) {
	l.mu.Lock()
	l.maxConns = n
	l.maxIdle = min(l.maxIdle, n)
	l.mu.Unlock()
}

// get returns a connection to addr and whether it was reused from the pool.
func (l *lean) get(ctx context.Context, addr string) (*leanConn, bool, error) {
	now := time.Now()
	l.mu.Lock()
	h := l.hosts[addr]
	if h == nil {
		h = &hostPool{}
		l.hosts[addr] = h
	}
	for len(h.idle) > 0 {
		c := h.idle[len(h.idle)-1]
		h.idle = h.idle[:len(h.idle)-1]
		l.idleAll--
		if now.Sub(c.idleSince) < l.idleTimeout {
			l.mu.Unlock()
			return c, true, nil
		}
		h.total--
		c.Close()
	}
	if h.total < l.maxConns {
		h.total++
		l.mu.Unlock()
		return l.dialSlot(ctx, addr)
	}
	ch := make(chan *leanConn, 1)
	h.waiters = append(h.waiters, ch)
	l.mu.Unlock()
	select {
	case c := <-ch:
		if c != nil {
			return c, true, nil
		}
		return l.dialSlot(ctx, addr)
	case <-ctx.Done():
		l.mu.Lock()
		for i, w := range h.waiters {
			if w == ch {
				h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
				l.mu.Unlock()
				return nil, false, ctx.Err()
			}
		}
		l.mu.Unlock()
		// Handed a connection or a slot meanwhile: pass it on.
		l.put(addr, <-ch, true)
		return nil, false, ctx.Err()
	}
}

// dialSlot dials addr in a slot already counted in its pool's total.
func (l *lean) dialSlot(ctx context.Context, addr string) (*leanConn, bool, error) {
	nc, err := l.dial(ctx, "tcp", addr)
	if err != nil {
		l.put(addr, nil, false)
		return nil, false, err
	}
	return newLeanConn(nc), false, nil
}

// put gives back the slot of c: kept idle (or handed to a waiter) when
// reuse, else closed. A nil c gives back a slot without a connection.
func (l *lean) put(addr string, c *leanConn, reuse bool) {
	if c == nil {
		reuse = false
	}
	if !reuse && c != nil {
		c.Close()
		c = nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[addr]
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		w <- c // a nil c hands over the slot: the waiter dials
		return
	}
	if c == nil || l.idleAll >= l.maxIdle {
		if c != nil {
			c.Close()
		}
		h.total--
	} else {
		c.idleSince = now
		h.idle = append(h.idle, c)
		l.idleAll++
	}
	if now.Sub(l.lastSweep) > l.idleTimeout/3 {
		l.lastSweep = now
		l.sweep(now)
	}
}

// sweep closes connections idle for longer than the idle timeout (l.mu held).
func (l *lean) sweep(now time.Time) {
	for addr, h := range l.hosts {
		n := 0
		for n < len(h.idle) && now.Sub(h.idle[n].idleSince) >= l.idleTimeout {
			h.idle[n].Close()
			n++
		}
		if n > 0 {
			h.idle = append(h.idle[:0], h.idle[n:]...)
			h.total -= n
			l.idleAll -= n
		}
		if h.total == 0 && len(h.waiters) == 0 {
			delete(l.hosts, addr)
		}
	}
}

// maxPooledBuf bounds the requests whose buffer goes back to bufPool: a
// rare large payload does not pin its memory.
const maxPooledBuf = 64 << 10

// max1xx bounds the informational answers read before the real one, as
// net/http does.
const max1xx = 5

var (
	bufPool    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	// postRequest tells http.ReadResponse the answer is to a POST.
	postRequest = &http.Request{Method: http.MethodPost}
)

// errBadHeader is a header value that cannot be sent.
var errBadHeader = errors.New("net/http: invalid header field value")

// writeRequest appends the HTTP/1.1 request to buf.
func writeRequest(buf *bytes.Buffer, u *url.URL, h http.Header, body []byte) error {
	buf.WriteString("POST ")
	buf.WriteString(u.RequestURI())
	buf.WriteString(" HTTP/1.1\r\nHost: ")
	buf.WriteString(hostHeader(u.Host))
	buf.WriteString("\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ")
	buf.WriteString(strconv.Itoa(len(body)))
	buf.WriteString("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			if !validHeaderValue(v) {
				return fmt.Errorf("%w for %q", errBadHeader, k)
			}
			buf.WriteString(k)
			buf.WriteString(": ")
			buf.WriteString(v)
			buf.WriteString("\r\n")
		}
	}
	buf.WriteString("\r\n")
	buf.Write(body)
	return nil
}

// hostHeader is u.Host without an IPv6 zone, which means nothing to the
// participant (net/http drops it too): "[fe80::1%eth0]:80" is sent as
// "[fe80::1]:80".
func hostHeader(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	end := strings.IndexByte(host, ']')
	if zone := strings.IndexByte(host[:max(end, 0)], '%'); zone > 0 {
		return host[:zone] + host[end:]
	}
	return host
}

// validHeaderValue follows net/http's rule: no control bytes but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// leanAnswer is what a lean round trip read.
type leanAnswer struct {
	code   int
	header http.Header
	body   []byte
	// bodyErr: reading the body failed after the status line arrived.
	bodyErr error
}

// roundTrip sends the request and reads the whole answer (body bounded by
// MaxResponseBody). A kept-alive connection is used again only if nothing
// arrived on it while idle (a close by the participant, stray bytes). The
// request is sent a second time, on a new connection, only when it was not
// written at all on a reused one; once it was written, a connection that
// breaks gives an error (the coordinator retries the call, as after any
// lost answer), never a silent second delivery.
func (l *lean) roundTrip(ctx context.Context, u *url.URL, h http.Header, body []byte) (*leanAnswer, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	if err := writeRequest(buf, u, h, body); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	c, reused, err := l.get(ctx, addr)
	for {
		if err != nil {
			return nil, err
		}
		// The deadline goes first: one left by the connection's last
		// call may be past, and would fail the probe.
		if err := c.SetDeadline(deadline); err != nil {
			l.put(addr, c, false)
			return nil, err
		}
		if reused && !c.idleQuiet() {
			l.put(addr, c, false) // closed, its slot given back
			c, reused, err = l.get(ctx, addr)
			continue
		}
		ans, reuse, written, xerr := l.exchange(ctx, c, buf.Bytes())
		if xerr == nil {
			l.put(addr, c, reuse)
			return ans, nil
		}
		if !reused || written || ctx.Err() != nil || isTimeout(xerr) {
			l.put(addr, c, false)
			return nil, xerr
		}
		// Nothing was sent on a reused connection: send it on a new one,
		// in the same slot.
		c.Close()
		c, reused, err = l.dialSlot(ctx, addr)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange writes req on c (whose deadline is the context's) and reads the
// answer; reuse says whether c may carry another call, written whether any
// byte of req was written.
func (l *lean) exchange(ctx context.Context, c *leanConn, req []byte) (*leanAnswer, bool, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, false, err
	}
	c.read = 0
	_, timed := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	ans, reuse, written, err := l.exchangeOnce(c, req)
	if !stop() {
		reuse = false // the deadline may be in the past
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		err = ctx.Err()
	case timed && isTimeout(err):
		// The connection's deadline is the context's: it may fire a
		// moment before the context's own timer does.
		err = context.DeadlineExceeded
	}
	return ans, reuse, written, err
}

func (l *lean) exchangeOnce(c *leanConn, req []byte) (*leanAnswer, bool, bool, error) {
	if n, err := c.Write(req); err != nil {
		return nil, false, n > 0, err
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	c.limit = MaxResponseHeader
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		var err error
		resp, err = http.ReadResponse(br, postRequest)
		if err != nil {
			return nil, false, true, err // c is closed: its limit does not matter
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational answers precede the real one.
		if n1xx == max1xx {
			return nil, false, true, fmt.Errorf("more than %d informational (1xx) answers", max1xx)
		}
	}
	// The head is read (the reader may hold the start of the body).
	c.limit = 0
	ans := &leanAnswer{code: resp.StatusCode, header: resp.Header}
	ans.body, ans.bodyErr = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	reuse := ans.bodyErr == nil && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if reuse {
		var one [1]byte
		n, err := resp.Body.Read(one[:])
		reuse = n == 0 && err == io.EOF && br.Buffered() == 0
	}
	// Not resp.Body.Close(): on a keep-alive answer it reads the rest of
	// the body, however long. A connection not reused is closed by put.
	return ans, reuse, true, nil
}
