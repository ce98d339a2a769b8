//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// hasPendingInput reports whether c's socket has bytes waiting to be read:
// a request the server has not read yet.
// It peeks without blocking and without taking the read lock that the
// server's pending Read holds.
func hasPendingInput(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = err == nil && n > 0
	})
	return pending
}
