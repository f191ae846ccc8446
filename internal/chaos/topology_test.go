package chaos

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echoServer answers each line with itself, on loopback.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func TestTCPProxyCut(t *testing.T) {
	p, err := newTCPProxy(echoServer(t))
	require.NoError(t, err)
	defer p.close()

	c, err := net.Dial("tcp", p.addr())
	require.NoError(t, err)
	defer c.Close()
	got, err := roundTrip(c, "hello")
	require.NoError(t, err)
	require.Equal(t, "hello\n", got)

	// Cut: the open connection is closed, a new one is closed at once.
	p.cut(true)
	_, err = roundTrip(c, "lost")
	require.Error(t, err)
	c2, err := net.Dial("tcp", p.addr())
	require.NoError(t, err)
	defer c2.Close()
	_, err = roundTrip(c2, "refused")
	require.Error(t, err)

	// Lifted: connections go through again.
	p.cut(false)
	c3, err := net.Dial("tcp", p.addr())
	require.NoError(t, err)
	defer c3.Close()
	got, err = roundTrip(c3, "back")
	require.NoError(t, err)
	require.Equal(t, "back\n", got)
}
