package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func subscribers(h *hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// TestHub_StalledReaderDropped: a client that opens a stream and stops
// reading is disconnected once a write does not finish within the write
// timeout, with fewer events pending than would drop it for falling
// behind (eventBuffer).
func TestHub_StalledReaderDropped(t *testing.T) {
	h, _ := newTestHub(t)
	h.writeTimeout = 100 * time.Millisecond
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", c.RemoteAddr())
	require.NoError(t, err)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "event: hello") {
			break
		}
	}
	require.Equal(t, 1, subscribers(h))
	// Far more than the socket buffers hold, in fewer events than the
	// subscriber's buffer: only the write deadline can end the stream.
	big := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	for range eventBuffer - 16 {
		h.publish(sseEvent{name: "tx", data: big})
	}
	require.Eventually(t, func() bool { return subscribers(h) == 0 }, 20*time.Second, 10*time.Millisecond,
		"the stalled stream is still held")
}
