package decisionlog

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		n    int
		step time.Duration
		opts WriterOpts
	}{
		{"one row", 1, time.Second, WriterOpts{}},
		{"many rows one partition", 5000, time.Millisecond, WriterOpts{BatchRows: 64, QueueBatches: 4, Full: FullBlock}},
		{"across partitions", 3000, 7 * time.Second, WriterOpts{BatchRows: 100, Full: FullBlock, TenantSalt: "pepper"}},
		{"zstd small row groups", 2000, 10 * time.Millisecond, WriterOpts{Compression: "zstd", RowGroupRows: 100, Full: FullBlock}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.n)))
			o := tt.opts
			o.Root = t.TempDir()
			w := mustWriter(t, o)
			want := make([]decision.Record, tt.n)
			var rec decision.Record
			for i := range tt.n {
				want[i] = genRecord(rng, i, tt.step)
				// Log through a reused record, as the core does.
				copyInto(&rec, &want[i])
				w.Log(&rec)
			}
			require.NoError(t, w.Close())
			st := w.Stats()
			assert.Equal(t, uint64(tt.n), st.Committed, "committed rows")
			assert.Zero(t, st.Dropped)
			assert.Zero(t, st.QueueDepth)

			got, errs := readAll(t, ReaderOpts{Paths: []string{o.Root}})
			require.Empty(t, errs)
			require.Len(t, got, tt.n)
			for i := range want {
				require.Equal(t, expectRead(want[i], o.TenantSalt), got[i], "row %d", i)
			}

			// With Reuse, each record is right while it is current.
			i := 0
			for rec, err := range NewReader(ReaderOpts{Paths: []string{o.Root}, Reuse: true, BatchRows: 7}).Records(t.Context()) {
				require.NoError(t, err)
				// Reused empty slices are empty, not nil.
				f := &rec.Request.Features
				if len(f.Tags) == 0 {
					f.Tags = nil
				}
				if len(f.Vector) == 0 {
					f.Vector = nil
				}
				require.Equal(t, expectRead(want[i], o.TenantSalt), rec, "reused row %d", i)
				i++
			}
			assert.Equal(t, tt.n, i)
		})
	}
}

// copyInto copies src into dst reusing dst's slices, like a caller that
// reuses one Record.
func copyInto(dst, src *decision.Record) {
	cands, probs, atts := dst.Decision.Candidates[:0], dst.Decision.Probs[:0], dst.Outcome.Attempts[:0]
	tags, vec := dst.Request.Features.Tags[:0], dst.Request.Features.Vector[:0]
	*dst = *src
	dst.Decision.Candidates = append(cands, src.Decision.Candidates...)
	dst.Decision.Probs = append(probs, src.Decision.Probs...)
	dst.Outcome.Attempts = append(atts, src.Outcome.Attempts...)
	dst.Request.Features.Tags = append(tags, src.Request.Features.Tags...)
	dst.Request.Features.Vector = append(vec, src.Request.Features.Vector...)
}

func TestPartitionLayout(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock, WriterID: "w1"})
	rng := rand.New(rand.NewPCG(2, 2))
	// 3 hours, crossing midnight: 22:xx, 23:xx, 00:xx next day.
	start := time.Date(2026, 11, 23, 22, 30, 0, 0, time.UTC)
	for i := range 150 {
		rec := genRecord(rng, i, 0)
		rec.Time = start.Add(time.Duration(i) * time.Minute)
		w.Log(&rec)
	}
	require.NoError(t, w.Close())
	var files []string
	require.NoError(t, filepath.WalkDir(filepath.Join(root, TableDecisions), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return err
	}))
	var dirs []string
	for _, f := range files {
		assert.True(t, strings.HasSuffix(f, ".parquet"), "no .tmp left: %s", f)
		assert.Contains(t, filepath.Base(f), "-w1-", "writer id in name")
		dirs = append(dirs, filepath.Dir(f))
	}
	assert.Equal(t, []string{
		"decisions/dt=2026-11-23/hour=22",
		"decisions/dt=2026-11-23/hour=23",
		"decisions/dt=2026-11-24/hour=00",
	}, dirs)
	side, err := os.ReadFile(filepath.Join(root, StatsDir, "decisions-w1.json"))
	require.NoError(t, err)
	assert.Contains(t, string(side), `"committed": 150`)

	// Time filter, including partition pruning.
	got, errs := readAll(t, ReaderOpts{Paths: []string{root}, From: start.Add(40 * time.Minute), To: start.Add(100 * time.Minute)})
	require.Empty(t, errs)
	require.Len(t, got, 60)
	assert.Equal(t, start.Add(40*time.Minute), got[0].Time)
	assert.Equal(t, start.Add(99*time.Minute), got[59].Time)
}

func TestRotation(t *testing.T) {
	t.Run("by rows", func(t *testing.T) {
		root := t.TempDir()
		var commits []CommitInfo
		w := mustWriter(t, WriterOpts{Root: root, MaxFileRows: 100, BatchRows: 64, Full: FullBlock,
			OnCommit: func(c CommitInfo) { commits = append(commits, c) }})
		rng := rand.New(rand.NewPCG(3, 3))
		for i := range 1050 {
			rec := genRecord(rng, i, time.Millisecond)
			w.Log(&rec)
		}
		require.NoError(t, w.Close())
		require.Len(t, commits, 11)
		for _, c := range commits[:10] {
			assert.Equal(t, int64(100), c.Rows)
		}
		assert.Equal(t, int64(50), commits[10].Rows)
		assert.Equal(t, uint64(1050), commits[10].TotalRows)
		assert.Equal(t, uint64(11), w.Stats().Files)
		got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
		require.Empty(t, errs)
		assert.Len(t, got, 1050)
	})
	t.Run("by age", func(t *testing.T) {
		root := t.TempDir()
		commits := make(chan CommitInfo, 10)
		w := mustWriter(t, WriterOpts{Root: root, MaxFileAge: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond,
			OnCommit: func(c CommitInfo) { commits <- c }})
		rng := rand.New(rand.NewPCG(4, 4))
		rec := genRecord(rng, 0, 0)
		w.Log(&rec)
		// No Close: the row must be published by age alone.
		select {
		case c := <-commits:
			assert.Equal(t, int64(1), c.Rows)
		case <-time.After(10 * time.Second):
			t.Fatal("file not committed by age")
		}
		got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
		require.Empty(t, errs)
		assert.Len(t, got, 1)
		require.NoError(t, w.Close())
	})
}
