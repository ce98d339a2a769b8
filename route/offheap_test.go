package route

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mapBlockWorks reports whether this platform maps blocks outside the Go
// heap.
func mapBlockWorks() bool {
	b, ok := mapBlock(arenaBlock)
	if ok {
		unmapBlock(b)
	}
	return ok
}

func TestOffheapBlocks(t *testing.T) {
	if !mapBlockWorks() {
		t.Skip("this platform maps no memory outside the Go heap")
	}
	o := newOffheap()
	var a chunkArena
	x := a.alloc(o, 100)
	y := a.alloc(o, 200)
	assert.Len(t, x, 100)
	assert.Equal(t, 100, cap(x), "an allocation cannot grow into the next one")
	assert.Same(t, &a.blocks[0][100], &y[0], "bump allocation in one block")
	big := a.alloc(o, 3*arenaBlock)
	assert.Len(t, big, 3*arenaBlock)
	assert.Len(t, a.blocks, 2, "a decision larger than a block gets its own")
	assert.Equal(t, int64(4*arenaBlock), o.mapped.Load())
	a.alloc(o, 10)
	assert.Len(t, a.blocks, 3, "after a large block, a new standard one")
	a.free(o)
	assert.Empty(t, a.blocks)
	assert.Equal(t, int64(2*arenaBlock), o.mapped.Load(), "standard blocks kept as spares, the large one unmapped")
	assert.Len(t, o.spare, 2)
	a.alloc(o, 1)
	assert.Equal(t, int64(2*arenaBlock), o.mapped.Load(), "a spare reused")
	for range arenaSpare + 4 {
		var b chunkArena
		b.alloc(o, arenaBlock)
		defer b.free(o)
	}
	o.trim()
	assert.Empty(t, o.spare)
	o.release()
	assert.Zero(t, o.mapped.Load())
	assert.Empty(t, o.owned)
}

// TestPendingStoreUnmapsWhenUnreachable: a discarded store's blocks,
// which the garbage collector does not manage, are unmapped once the store
// is garbage.
func TestPendingStoreUnmapsWhenUnreachable(t *testing.T) {
	if !mapBlockWorks() {
		t.Skip("this platform maps no memory outside the Go heap")
	}
	mem := func() *offheap {
		p := newPendingStore(time.Hour, 5000, 0, nil, nil)
		for i := range 5000 {
			r := pendingRecord(i)
			p.put(r, time.Unix(1700000000, 0), false)
		}
		require.Positive(t, p.mem.mapped.Load())
		return p.mem
	}()
	deadline := time.Now().Add(5 * time.Second)
	for mem.mapped.Load() != 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	assert.Zero(t, mem.mapped.Load(), "blocks of an unreachable store still mapped")
}

// TestPendingStoreCopiesOutOfTheArena runs puts, takes and expiries from
// several goroutines through a small store, so chunks are dropped and
// their blocks reused while decisions taken from them are still being
// decoded elsewhere. Every decision carries its number three ways (id,
// prompt tokens, a probability): a decision read from a block after it
// was given back and reused would mix them.
func TestPendingStoreCopiesOutOfTheArena(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	check := func(h *held, id string) {
		n := h.features.PromptTokens
		if len(h.decision.Probs) != 1 || h.decision.Probs[0] != float64(n) || (id != "" && id != "r"+strconv.Itoa(n)) ||
			len(h.features.Vector) != 40 || h.features.Vector[n%40] != float64(n) {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("id %q: tokens %d, probs %v", id, n, h.decision.Probs))
			mu.Unlock()
		}
	}
	p := newPendingStore(time.Hour, 1500, 0, func(h *held) { check(h, "") }, nil)
	const workers, each = 4, 6000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			vec := make([]float64, 40)
			for i := range each {
				n := w*each + i
				clear(vec)
				vec[n%40] = float64(n)
				rec := &decision.Record{Request: decision.Request{ID: "r" + strconv.Itoa(n), Features: decision.Features{PromptTokens: n, Vector: vec}},
					Decision: decision.Decision{Probs: []float64{float64(n)}}}
				p.put(rec, time.Unix(1700000000, 0), true)
				if i%3 == 0 && n > 1000 {
					id := "r" + strconv.Itoa(n-500)
					if h := p.take(id, time.Unix(1700000000, 0)); h != nil {
						check(h, id)
					}
				}
			}
		})
	}
	wg.Wait()
	p.flush()
	st := p.stats()
	assert.Empty(t, bad)
	assert.Equal(t, uint64(workers*each), st.Expired+st.FromFeedback, "every decision left exactly once")
	assert.Positive(t, st.FromFeedback)
	assert.Zero(t, st.Waiting)
	if mapBlockWorks() {
		assert.Zero(t, st.Mapped, "an empty store keeps no blocks")
	}
}
