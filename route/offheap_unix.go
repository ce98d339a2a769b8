//go:build unix

package route

import (
	"syscall"
	"unsafe"
)

// mapBlock maps n bytes of anonymous private memory, outside the Go heap;
// false when the kernel refuses (the caller then uses the heap).
func mapBlock(n int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, false
	}
	return b, true
}

// unmapBlock returns a block from mapBlock to the kernel.
func unmapBlock(b []byte) { _ = syscall.Munmap(b) }

// unsafeBytes is the block of n bytes at p (from mapBlock).
func unsafeBytes(p *byte, n int) []byte { return unsafe.Slice(p, n) }
