package decisionlog

import (
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryBoundSplit(t *testing.T) {
	tests := []struct {
		name                  string
		o                     WriterOpts
		bound, batch, q, rgrp int
	}{
		{"defaults", WriterOpts{}, DefaultMaxMemoryRows, DefaultBatchRows, DefaultQueueBatches, DefaultRowGroupRows},
		{"derived from the bound", WriterOpts{MaxMemoryRows: 4000}, 4000, 333, 4, 1333},
		{"small bound", WriterOpts{MaxMemoryRows: 100, MaxOpenFiles: 1}, 100, 8, 4, 66},
		{"explicit settings, no bound", WriterOpts{BatchRows: 1024, QueueBatches: 32, RowGroupRows: 8192}, 1024*32 + 2*8192, 1024, 32, 8192},
		{"explicit row groups within a bound", WriterOpts{MaxMemoryRows: 10000, RowGroupRows: 1000}, 10000, 512, 15, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Root = "x"
			require.NoError(t, o.defaults())
			assert.Equal(t, tt.bound, o.MaxMemoryRows, "MaxMemoryRows")
			assert.Equal(t, tt.batch, o.BatchRows, "BatchRows")
			assert.Equal(t, tt.q, o.QueueBatches, "QueueBatches")
			assert.Equal(t, int64(tt.rgrp), o.RowGroupRows, "RowGroupRows")
			assert.LessOrEqual(t, int64(o.BatchRows*o.QueueBatches)+o.RowGroupRows*int64(o.MaxOpenFiles), int64(o.MaxMemoryRows))
		})
	}
}

// liveHeap is the heap in use by reachable objects (HeapAlloc right after
// a GC): steadier than HeapInuse, which counts partly used spans.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryBounded writes 200,000 rows into one open file (no
// rotation) and checks that the writer's heap does not grow with the
// rows written over the last 100,000:
// rows stream to disk a row group at a time, and the queue is bounded by
// MaxMemoryRows. The live heap is read with runtime.ReadMemStats after a
// GC, not timed.
func TestMemoryBounded(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 60_000
	}
	rng := rand.New(rand.NewPCG(7, 7))
	base := genRecord(rng, 4, 0)
	base.Request.Features.Tags = []string{"env=prod", "tier=gold"}
	base.Request.Features.Vector = make([]float64, 10)
	w := mustWriter(t, WriterOpts{Root: t.TempDir(), Full: FullBlock, MaxFileRows: 1 << 40}) // default bound: 8192-row groups
	logN := func(from, to int) {
		for i := from; i < to; i++ {
			base.Time = testBase // one hour partition, one open file
			w.Log(&base)
		}
	}
	warm := n / 2 // every buffer has reached its size by then
	logN(0, warm)
	h0 := liveHeap()
	logN(warm, n)
	h1 := liveHeap()
	st := w.Stats()
	growth := int64(h1) - int64(h0)
	groups := int64(n-warm) / w.p.o.RowGroupRows
	t.Logf("live heap after %d rows: %.1f MiB; after %d rows: %.1f MiB (growth %+.2f MiB, %.0f bytes per row group written); %d open file(s)",
		warm, float64(h0)/(1<<20), n, float64(h1)/(1<<20), float64(growth)/(1<<20), float64(growth)/float64(groups), st.OpenFiles)
	require.Equal(t, uint64(0), st.Dropped)
	require.Equal(t, 1, st.OpenFiles, "all rows go to one open file")
	// What grows is the open file's footer metadata, 30–40 KB per row
	// group whatever its rows (doc.go; more under the race detector).
	// Rows kept in memory would cost ~0.5 KB each: 48 MiB here.
	assert.Less(t, growth, 64<<10*groups+(4<<20), "heap grew by %d bytes over %d rows in %d row groups", growth, n-warm, groups)
	require.NoError(t, w.Close())
	fi, err := os.ReadDir(w.p.dir)
	require.NoError(t, err)
	assert.NotEmpty(t, fi)
}
