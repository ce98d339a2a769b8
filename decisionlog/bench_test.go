package decisionlog

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/require"
)

// BenchmarkLog measures the caller's side of Log: copy the record into a
// preallocated row and return. The disk goroutine recycles batches without
// encoding them, so the queue never fills and every row takes the copy
// path (dropped/op shows it); Log must not allocate.
func BenchmarkLog(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	rec := genRecord(rng, 4, 0) // shadow, 1-3 attempts
	rec.Request.Features.Tags = []string{"env=prod", "tier=gold"}
	rec.Request.Features.Vector = []float64{1, 0.5, 0.25, 0.125}
	w := mustWriter(b, WriterOpts{Root: b.TempDir(), Full: FullBlock})
	w.p.discard = true
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.Log(&rec)
	}
	b.StopTimer()
	st := w.Stats()
	require.NoError(b, w.Close())
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
	b.ReportMetric(float64(len(rec.Outcome.Attempts)), "attempts")
}

// BenchmarkLogParallel is BenchmarkLog from GOMAXPROCS goroutines.
func BenchmarkLogParallel(b *testing.B) {
	w := mustWriter(b, WriterOpts{Root: b.TempDir(), Full: FullBlock})
	w.p.discard = true
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(1, 2))
		rec := genRecord(rng, 3, 0)
		for pb.Next() {
			w.Log(&rec)
		}
	})
	b.StopTimer()
	require.NoError(b, w.Close())
}

// BenchmarkThroughput measures sustained rows/s to disk with FullBlock:
// every row logged is written, so the rate is the disk goroutine's.
func BenchmarkThroughput(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 3))
	pool := make([]decision.Record, 256)
	for i := range pool {
		pool[i] = genRecord(rng, i, time.Microsecond)
	}
	root := b.TempDir()
	w := mustWriter(b, WriterOpts{Root: root, Full: FullBlock})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	i := 0
	for b.Loop() {
		w.Log(&pool[i&255])
		i++
	}
	require.NoError(b, w.Close())
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
	require.Equal(b, uint64(b.N), w.Stats().Committed)
	var size int64
	for _, p := range listDecisionFiles(b, root) {
		st, err := os.Stat(p)
		require.NoError(b, err)
		size += st.Size()
	}
	b.ReportMetric(float64(size)/float64(b.N), "file-B/row")
}

// TestThroughput10M writes 10M rows with FullBlock and reports rows/s and
// the process's peak RSS (VmHWM). Set ROUTELAB_BENCH_10M=1 to run it.
func TestThroughput10M(t *testing.T) {
	if os.Getenv("ROUTELAB_BENCH_10M") == "" {
		t.Skip("set ROUTELAB_BENCH_10M=1 to write 10M rows and report rows/s and peak RSS")
	}
	const n = 10_000_000
	rng := rand.New(rand.NewPCG(1, 4))
	pool := make([]decision.Record, 256)
	for i := range pool {
		pool[i] = genRecord(rng, i, 0)
	}
	root := t.TempDir()
	var committed atomic.Uint64
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock, OnCommit: func(c CommitInfo) { committed.Store(c.TotalRows) }})
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	for i := range n {
		rec := &pool[i&255]
		// 10M rows over 10 hours of record time: 10 partitions.
		rec.Time = base.Add(time.Duration(i) * 3600 * time.Microsecond)
		w.Log(rec)
	}
	require.NoError(t, w.Close())
	el := time.Since(start)
	require.Equal(t, uint64(n), w.Stats().Committed)
	var size int64
	for _, p := range listDecisionFiles(t, root) {
		st, err := os.Stat(p)
		require.NoError(t, err)
		size += st.Size()
	}
	t.Logf("wrote %d rows in %v: %.0f rows/s; %d files, %.1f MB (%.1f B/row); peak RSS %s",
		n, el.Round(time.Millisecond), n/el.Seconds(), w.Stats().Files, float64(size)/1e6, float64(size)/n, peakRSS(t))

	start = time.Now()
	var rows int
	for _, err := range NewReader(ReaderOpts{Paths: []string{root}}).Records(context.Background()) {
		require.NoError(t, err)
		rows++
	}
	el = time.Since(start)
	require.Equal(t, n, rows)
	t.Logf("read %d records in %v: %.0f rows/s; peak RSS %s", rows, el.Round(time.Millisecond), float64(rows)/el.Seconds(), peakRSS(t))
}

func listDecisionFiles(t testing.TB, root string) []string {
	t.Helper()
	decs, _, errs := listFiles([]string{root}, false)
	require.Empty(t, errs)
	return decs
}

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS(t testing.TB) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			fields := strings.Fields(v)
			if kb, err := strconv.Atoi(fields[0]); err == nil {
				return strconv.Itoa(kb/1024) + " MiB"
			}
		}
	}
	return "unknown"
}

// BenchmarkRead measures Records over one 100k-row file: decode, convert to
// decision.Record, yield; fresh records and reused ones.
func BenchmarkRead(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) { benchRead(b, reuse) })
	}
}

func benchRead(b *testing.B, reuse bool) {
	const n = 100_000
	root := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 5))
	pool := make([]decision.Record, 256)
	for i := range pool {
		pool[i] = genRecord(rng, i, 0)
	}
	w := mustWriter(b, WriterOpts{Root: root, Full: FullBlock})
	for i := range n {
		w.Log(&pool[i&255])
	}
	require.NoError(b, w.Close())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		rows := 0
		for _, err := range NewReader(ReaderOpts{Paths: []string{root}, Reuse: reuse}).Records(context.Background()) {
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
		if rows != n {
			b.Fatalf("read %d rows, want %d", rows, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "rows/s")
}
