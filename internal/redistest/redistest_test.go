package redistest_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/redistest"
)

func TestStart_ServesAndStops(t *testing.T) {
	s := redistest.Start(t)
	require.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"))
	require.Equal(t, "+OK", command(t, s.Addr, "SET k v"))
	require.Equal(t, "$1", command(t, s.Addr, "GET k"))

	s.Stop()
	_, err := net.DialTimeout("tcp", s.Addr, time.Second)
	require.Error(t, err, "a stopped server no longer accepts connections")
}

func TestStart_TwoServersAreIndependent(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	require.NotEqual(t, a.Addr, b.Addr)
	require.Equal(t, "+OK", command(t, a.Addr, "SET only-a 1"))
	require.Equal(t, "$-1", command(t, b.Addr, "GET only-a"))
}

// command sends one inline command and returns the first line of the answer.
func command(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write([]byte(cmd + "\r\n"))
	require.NoError(t, err)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}
