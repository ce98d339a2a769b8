package decisionlog

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriterOptsErrors(t *testing.T) {
	tests := []struct {
		name string
		o    WriterOpts
		want string
	}{
		{"no root", WriterOpts{}, "root"},
		{"negative batch", WriterOpts{Root: "x", BatchRows: -1}, "batch_rows"},
		{"negative queue", WriterOpts{Root: "x", QueueBatches: -1}, "queue_batches"},
		{"negative rows", WriterOpts{Root: "x", MaxFileRows: -5}, "max_file_rows"},
		{"negative age", WriterOpts{Root: "x", MaxFileAge: -time.Second}, "max_file_age"},
		{"bad policy", WriterOpts{Root: "x", Full: 7}, "full policy"},
		{"bad codec", WriterOpts{Root: "x", Compression: "bzip9"}, "compression"},
		{"bad id", WriterOpts{Root: "x", WriterID: "a/b"}, "path separator"},
		{"negative bound", WriterOpts{Root: "x", MaxMemoryRows: -1}, "max_memory_rows: -1"},
		{"over the bound", WriterOpts{Root: "x", MaxMemoryRows: 1000, RowGroupRows: 400, BatchRows: 100, QueueBatches: 3},
			"max_memory_rows: 1000 rows is less than batch_rows 100 × queue_batches 3 + row_group_rows 400 × max_open_files 2 = 1100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWriter(tt.o)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err := ParseFullPolicy("sometimes")
	assert.ErrorContains(t, err, "sometimes")
	for _, p := range []FullPolicy{FullDrop, FullBlock} {
		got, err := ParseFullPolicy(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
}

// TestDropWhenFull stalls the disk goroutine inside OnCommit while it
// holds one of the two 4-row batches: the other batch fills, and every row
// after that is dropped and counted.
func TestDropWhenFull(t *testing.T) {
	root := t.TempDir()
	inCommit, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w := mustWriter(t, WriterOpts{Root: root, BatchRows: 4, QueueBatches: 2, MaxFileRows: 4, FlushInterval: time.Hour,
		OnCommit: func(CommitInfo) {
			once.Do(func() { close(inCommit); <-release })
		}})
	rng := rand.New(rand.NewPCG(7, 7))
	rec := genRecord(rng, 1, 0)
	for range 4 {
		w.Log(&rec)
	}
	<-inCommit
	for range 16 {
		w.Log(&rec)
	}
	st := w.Stats()
	assert.Equal(t, uint64(8), st.Enqueued)
	assert.Equal(t, uint64(12), st.Dropped)
	assert.Equal(t, 8, st.QueueDepth, "both batches are out: one being written, one waiting")
	close(release)
	require.NoError(t, w.Close())
	st = w.Stats()
	assert.Equal(t, uint64(8), st.Committed)
	assert.Equal(t, uint64(12), w.Dropped())
	got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
	require.Empty(t, errs)
	assert.Len(t, got, 8)

	// After Close, Log drops.
	w.Log(&rec)
	assert.Equal(t, uint64(13), w.Dropped())
}

func TestBlockConcurrent(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, BatchRows: 8, QueueBatches: 2, Full: FullBlock, MaxFileRows: 500})
	const goroutines, per = 4, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(8, uint64(g)))
			for i := range per {
				rec := genRecord(rng, g*per+i, time.Millisecond)
				w.Log(&rec)
				if i%100 == 0 {
					_ = w.Stats()
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, w.Close())
	st := w.Stats()
	assert.Zero(t, st.Dropped)
	assert.Equal(t, uint64(goroutines*per), st.Committed)
	got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
	require.Empty(t, errs)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Request.ID] = true
	}
	assert.Len(t, seen, goroutines*per, "every request id once")
}

// TestCloseUnblocksBlockedLog: a Log waiting for room returns (dropping
// the row) when the writer closes.
func TestCloseWhileBlocked(t *testing.T) {
	w := mustWriter(t, WriterOpts{Root: t.TempDir(), BatchRows: 1, QueueBatches: 1, Full: FullBlock})
	rng := rand.New(rand.NewPCG(9, 9))
	rec := genRecord(rng, 1, 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				w.Log(&rec)
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, w.Close())
	wg.Wait()
	st := w.Stats()
	assert.Equal(t, uint64(800), st.Enqueued+st.Dropped)
	assert.Equal(t, st.Enqueued, st.Committed)
}

func TestWriterIOError(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock})
	// A file where the partition directory should go: the writer cannot
	// create it, counts the rows as failed and reports the error.
	require.NoError(t, os.WriteFile(filepath.Join(root, TableDecisions, "dt=2026-11-23"), nil, 0o644))
	rng := rand.New(rand.NewPCG(10, 10))
	for i := range 10 {
		rec := genRecord(rng, i, time.Second)
		w.Log(&rec)
	}
	err := w.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dt=2026-11-23")
	assert.Equal(t, uint64(10), w.Stats().Failed)
}
