package route

import (
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
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

// TestOffheapGetZeroed: a reused spare has its old bytes; getZeroed
// clears it (the chunks' slots count on zero for "free"), a new block is
// zero without it.
func TestOffheapGetZeroed(t *testing.T) {
	for _, heapOnly := range []bool{false, true} {
		o := newOffheap()
		o.heapOnly = heapOnly
		b := o.get(arenaBlock)
		assert.Equal(t, make([]byte, arenaBlock), b, "a new block is zero")
		for i := range b {
			b[i] = 0xAB
		}
		o.put(b)
		if !heapOnly {
			assert.Equal(t, byte(0xAB), o.get(arenaBlock)[7], "get reuses the spare as it is")
			o.put(b)
		}
		assert.Equal(t, make([]byte, arenaBlock), o.getZeroed(arenaBlock), "heap only %v", heapOnly)
		o.release()
	}
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

// TestSlotHoldsNoHeapPointer: the slots are in memory the garbage
// collector does not scan, so a slot may hold pointers only into its
// chunk's arena — the id and the numbers (pushLocked puts them there).
// A new pointer-bearing field (a string, slice, map, pointer) would be a
// pointer the collector cannot see: add it to entryExtra instead.
func TestSlotHoldsNoHeapPointer(t *testing.T) {
	st := reflect.TypeFor[slot]()
	for i := range st.NumField() {
		f := st.Field(i)
		switch f.Name {
		case "id", "nums": // into the arena
			continue
		}
		if hasPointers(f.Type) {
			t.Errorf("slot.%s (%s) holds pointers the garbage collector does not see", f.Name, f.Type)
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}

// TestPendingStoreKeepsWhatTheCollectorCannotSee: the heap objects a
// decision refers to — its extra (tags, a fallback chain) and the zone of
// its times — are kept alive by the store (the chunk's extras, the
// store's zones), not by the slots the collector does not scan. Every
// decision here has tags, two attempts and a zone of its own (more than
// the store's table holds, so most times go to the extra; some years
// are past what UnixNano holds), and the
// collector runs while they wait; each must come back exactly.
func TestPendingStoreKeepsWhatTheCollectorCannotSee(t *testing.T) {
	for _, heapOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("heap blocks ", heapOnly), func(t *testing.T) { testKeepsWhatTheCollectorCannotSee(t, heapOnly) })
	}
}

// testKeepsWhatTheCollectorCannotSee: heapOnly puts the blocks (slots and
// arena) on the Go heap, as where mapping is refused: byte slices, which
// the collector does not scan either.
func testKeepsWhatTheCollectorCannotSee(t *testing.T, heapOnly bool) {
	const n = 1500
	p := newPendingStore(time.Hour, n, 0, nil, nil)
	p.mem.heapOnly = heapOnly
	now := time.Now()
	want := make([]held, n)
	for i := range n {
		rec := pendingRecord(i)
		rec.Request.Features.Tags = []string{fmt.Sprint("tag-", i), strings.Repeat("x", i%40)}
		rec.Request.Features.Time = time.Date(2026, 12, 4, i%24, i%60, 0, i, time.FixedZone(fmt.Sprint("zone-", i), (i%48-24)*1800))
		if i%7 == 0 { // years from 1500 to 2999: some UnixNano cannot hold
			rec.Request.Features.Time = time.Date(1500+i, 1, 2, 3, 4, 5, 6, time.UTC)
		}
		rec.Outcome.Attempts = []decision.Attempt{{Arm: "mock-small", Status: decision.StatusError, Latency: time.Duration(i)}, rec.Outcome.Attempts[0]}
		p.put(rec, now, i%2 == 0)
		want[i] = copyHeld(rec, now, i%2 == 0)
		want[i].at = time.Unix(0, now.UnixNano()).In(now.Location())
		if i%100 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	runtime.GC()
	for i := range n {
		got := p.take(want[i].id, now)
		require.NotNil(t, got, "decision %d", i)
		assert.Equal(t, want[i], *got, "decision %d", i)
		assert.Equal(t, want[i].features.Time.Location().String(), got.features.Time.Location().String())
	}
	st := p.stats()
	assert.Equal(t, 0, st.Waiting)
	if heapOnly {
		assert.Zero(t, st.Mapped)
	}
}
