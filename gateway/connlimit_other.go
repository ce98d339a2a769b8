//go:build !unix

package gateway

import "net"

// hasPendingInput cannot peek at a socket on this platform: the minimum
// idle time alone guards a reclaimed connection.
func hasPendingInput(net.Conn) bool { return false }
