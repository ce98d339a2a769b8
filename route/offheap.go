package route

import (
	"sync"
	"sync/atomic"
)

// The pending store keeps its decisions — their slots (pointer-free, see
// slot), request ids and encoded numbers: all but the map of ids — in
// blocks of memory mapped outside the Go heap (where the platform allows;
// elsewhere in ordinary byte slices). The garbage collector neither scans
// them nor counts them in its heap goal, so a full store costs its bytes
// once instead of about twice (GOGC=100 lets the heap grow to twice what
// is live before collecting), and the collector's mark work does not grow
// with the store.
//
// Blocks are filled in order by the chunk of slots they belong to (a bump
// allocator) and given back all at once when the chunk is dropped, after
// every one of its decisions has left the store: bytes are never freed one
// by one, so there is no fragmentation to manage. The store must not keep
// a reference into a block past its chunk's drop: the map of ids holds
// them only while the decision is live, and everything handed out of the
// store (take, expiry) is copied first.

// arenaBlock is the size of a standard block. A decision larger than this
// (a text-feature vector can be ~15 KB) gets a block of its own size.
const arenaBlock = 64 << 10

// arenaSpare bounds the standard blocks kept mapped for reuse after their
// chunk is dropped (1 MiB).
const arenaSpare = 16

// offheap owns every block a pending store has mapped: the blocks in use
// by its chunks, and the spares.
type offheap struct {
	mu     sync.Mutex
	owned  map[*byte]int // first byte → length, of every mapped block
	spare  [][]byte
	mapped atomic.Int64 // bytes mapped outside the Go heap now
	// heapOnly makes every block an ordinary byte slice, as where
	// mapping is unavailable or refused (tests set it).
	heapOnly bool
}

func newOffheap() *offheap { return &offheap{owned: map[*byte]int{}} }

// get returns a block of at least n bytes (arenaBlock unless n is
// larger): a reused spare, whose bytes are what they were, or a new one,
// zeroed.
func (o *offheap) get(n int) []byte {
	b, _ := o.getBlock(n)
	return b
}

// getZeroed is get with every byte of the block zero. A new block is
// already (the kernel's, or make's), so only a reused one is cleared:
// clearing a new mapping would fault in all its pages at once.
func (o *offheap) getZeroed(n int) []byte {
	b, reused := o.getBlock(n)
	if reused {
		clear(b)
	}
	return b
}

func (o *offheap) getBlock(n int) (_ []byte, reused bool) {
	size := max(n, arenaBlock)
	o.mu.Lock()
	defer o.mu.Unlock()
	if size == arenaBlock && len(o.spare) > 0 {
		b := o.spare[len(o.spare)-1]
		o.spare = o.spare[:len(o.spare)-1]
		return b, true
	}
	b, ok := mapBlock(size)
	if !ok || o.heapOnly {
		if ok {
			unmapBlock(b)
		}
		return make([]byte, size), false // the Go heap: correct, only not off it
	}
	o.owned[&b[0]] = len(b)
	o.mapped.Add(int64(len(b)))
	return b, false
}

// put gives a block back: kept as a spare, or unmapped.
func (o *offheap) put(b []byte) {
	b = b[:cap(b)]
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.owned[&b[0]]
	if !ok {
		return // a heap block: the garbage collector frees it
	}
	if n == arenaBlock && len(o.spare) < arenaSpare {
		o.spare = append(o.spare, b)
		return
	}
	o.unmapLocked(b)
}

// unmapLocked returns an owned block to the kernel (o.mu held).
func (o *offheap) unmapLocked(b []byte) {
	delete(o.owned, &b[0])
	o.mapped.Add(-int64(len(b)))
	unmapBlock(b)
}

// trim unmaps the spare blocks.
func (o *offheap) trim() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range o.spare {
		o.unmapLocked(b)
	}
	o.spare = nil
}

// release unmaps every block still owned: called when the store is no
// longer reachable (runtime.AddCleanup in newPendingStore), so a
// discarded Core does not leak the memory the garbage collector does not
// manage.
func (o *offheap) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, n := range o.owned {
		o.unmapLocked(unsafeBytes(p, n))
	}
	o.spare = nil
}

// chunkArena is one chunk's bump allocator over blocks from an offheap.
type chunkArena struct {
	blocks [][]byte
	used   int // bytes handed out of the last block
}

// alloc returns n bytes of the arena (not zeroed).
func (a *chunkArena) alloc(o *offheap, n int) []byte {
	if k := len(a.blocks); k == 0 || a.used+n > len(a.blocks[k-1]) {
		a.blocks = append(a.blocks, o.get(n))
		a.used = 0
	}
	b := a.blocks[len(a.blocks)-1][a.used : a.used+n : a.used+n]
	a.used += n
	return b
}

// free gives every block back to o.
func (a *chunkArena) free(o *offheap) {
	for i, b := range a.blocks {
		o.put(b)
		a.blocks[i] = nil
	}
	a.blocks = a.blocks[:0]
	a.used = 0
}
