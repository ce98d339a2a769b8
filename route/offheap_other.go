//go:build !unix

package route

import "unsafe"

// mapBlock: this platform maps no memory outside the Go heap here; the
// store's blocks are ordinary byte slices.
func mapBlock(int) ([]byte, bool) { return nil, false }

func unmapBlock([]byte) {}

func unsafeBytes(p *byte, n int) []byte { return unsafe.Slice(p, n) }
