//go:build unix

package httptransport

import (
	"errors"
	"net"
	"syscall"
)

// prober returns a check of an idle connection: one non-blocking read
// that must find nothing to read. A close by the participant (read gives
// 0 bytes), a reset, or bytes nobody asked for (a 408 sent before closing)
// fail it. It is built once per connection, so a check allocates nothing;
// nil for a connection without a file descriptor.
func prober(nc net.Conn) func() bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var (
		one   [1]byte
		quiet bool
	)
	read := func(fd uintptr) bool {
		_, err := syscall.Read(int(fd), one[:])
		quiet = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true // done: never wait for the descriptor to be readable
	}
	return func() bool {
		quiet = false
		if err := rc.Read(read); err != nil {
			return false
		}
		return quiet
	}
}
