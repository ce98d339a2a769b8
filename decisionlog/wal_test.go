package decisionlog

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// preparedRows returns n rows as the disk goroutine holds them (tenant
// hashed with salt "s").
func preparedRows(n int, seed uint64) []Row {
	rng := rand.New(rand.NewPCG(seed, seed))
	w := &Writer{salt: "s", tenants: map[string]string{}}
	rows := make([]Row, n)
	for i := range rows {
		rec := genRecord(rng, i, time.Millisecond)
		rows[i].fill(&rec)
		w.prepare(&rows[i])
	}
	return rows
}

func segmentOf(rows []Row, perRecord int) []byte {
	seg := []byte(walMagic)
	var buf []byte
	for len(rows) > 0 {
		k := min(perRecord, len(rows))
		buf = encodeRecord[Row](rowCodec{}, buf, rows[:k])
		seg = append(seg, buf...)
		rows = rows[k:]
	}
	return seg
}

func TestWALCodecRoundTrip(t *testing.T) {
	rows := preparedRows(200, 21)
	seg := segmentOf(rows, 64)
	var got []decision.Record
	ss, more, err := scanSegment[Row](rowCodec{}, bytes.NewReader(seg), int64(len(seg)), make([]Row, 50), func(rs []Row) bool {
		for i := range rs {
			rec, err := rs[i].Record()
			require.NoError(t, err)
			got = append(got, rec)
		}
		return true
	})
	require.NoError(t, err)
	assert.True(t, more)
	assert.Equal(t, SegmentStats{Records: 4, Rows: 200}, ss)
	require.Len(t, got, len(rows))
	for i := range rows {
		want, err := rows[i].Record()
		require.NoError(t, err)
		require.Equal(t, want, got[i], "row %d", i)
	}
}

// TestWALTornSegment cuts a segment mid-record and flips a byte in
// another copy: scanning keeps the intact records and reports the cut.
func TestWALTornSegment(t *testing.T) {
	rows := preparedRows(100, 22)
	seg := segmentOf(rows, 10) // 10 records
	count := func(b []byte) SegmentStats {
		ss, _, err := scanSegment[Row](rowCodec{}, bytes.NewReader(b), int64(len(b)), make([]Row, 7), func([]Row) bool { return true })
		require.NoError(t, err)
		return ss
	}
	full := count(seg)
	require.Equal(t, int64(100), full.Rows)
	require.False(t, full.Torn)

	cut := seg[:len(seg)-5]
	ss := count(cut)
	assert.Equal(t, int64(90), ss.Rows)
	assert.True(t, ss.Torn)

	flip := bytes.Clone(seg)
	flip[len(walMagic)+walHeader+3] ^= 0x40 // inside the first record
	ss = count(flip)
	assert.Equal(t, int64(0), ss.Rows)
	assert.True(t, ss.Torn)
	assert.Equal(t, int64(len(seg)-len(walMagic)), ss.TornBytes)

	_, _, err := scanSegment[Row](rowCodec{}, bytes.NewReader([]byte("NOTAWAL!xxxx")), 12, make([]Row, 1), func([]Row) bool { return true })
	assert.ErrorContains(t, err, "magic")
}

// walFiles lists the WAL segments and .tmp files under root.
func walFiles(t *testing.T, root string) (wals, tmps []string) {
	t.Helper()
	wals, err := filepath.Glob(filepath.Join(root, TableDecisions, "*", "*", "*.wal"))
	require.NoError(t, err)
	tmps, err = filepath.Glob(filepath.Join(root, TableDecisions, "*", "*", "*.tmp"))
	require.NoError(t, err)
	return wals, tmps
}

// waitWritten waits until the disk goroutine has written (and fsynced)
// every logged row.
// logGenerated logs generated records from..to-1 (genRecord, a
// millisecond apart) to w.
func logGenerated(w *Writer, rng *rand.Rand, from, to int) {
	for i := from; i < to; i++ {
		rec := genRecord(rng, i, time.Millisecond)
		w.Log(&rec)
	}
}

func waitWritten(t *testing.T, w *Writer, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := w.Stats()
		return st.Enqueued == n && st.QueueDepth == 0
	}, 10*time.Second, 5*time.Millisecond)
}

// copyCrashed copies the open .tmp and .wal files of a live writer to a
// fresh root, as a SIGKILL would leave them (without the lock).
func copyCrashed(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	wals, tmps := walFiles(t, from)
	require.NotEmpty(t, wals)
	for _, p := range append(wals, tmps...) {
		rel, err := filepath.Rel(from, p)
		require.NoError(t, err)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(to, rel), b, 0o644))
	}
	return to
}

// TestRecoverTornWAL: a crashed writer's segment, cut mid-record, is
// folded into a committed, readable file holding its intact records; the
// cut is counted and shown by Inspect.
func TestRecoverTornWAL(t *testing.T) {
	live := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: live, BatchRows: 50, FlushInterval: 10 * time.Millisecond})
	rng := rand.New(rand.NewPCG(23, 23))
	var recs []decision.Record
	for i := range 300 {
		recs = append(recs, genRecord(rng, i, time.Millisecond))
		w.Log(&recs[i])
	}
	waitWritten(t, w, 300)
	root := copyCrashed(t, live)
	require.NoError(t, w.Close())

	wals, tmps := walFiles(t, root)
	require.Len(t, wals, 1)
	require.Len(t, tmps, 1)
	st, err := os.Stat(wals[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(wals[0], st.Size()-20))

	w2 := mustWriter(t, WriterOpts{Root: root})
	s := w2.Stats()
	require.NoError(t, w2.Close())
	assert.Equal(t, uint64(1), s.RecoveredSegments)
	assert.Equal(t, uint64(1), s.TornRecords)
	assert.Positive(t, s.TornBytes)
	// Batches of 50: the last record (up to 50 rows) is cut.
	assert.GreaterOrEqual(t, s.Recovered, uint64(250))
	assert.Less(t, s.Recovered, uint64(300))
	wals, tmps = walFiles(t, root)
	assert.Empty(t, wals, "recovered segment deleted")
	assert.Empty(t, tmps, "leftover .tmp deleted")

	got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
	require.Empty(t, errs)
	require.Len(t, got, int(s.Recovered))
	for i := range got {
		require.Equal(t, expectRead(recs[i], ""), got[i], "row %d", i)
	}
	sum, err := Inspect(t.Context(), root)
	require.NoError(t, err)
	assert.Equal(t, int64(s.Recovered), sum.Rows)
	assert.Equal(t, s.Recovered, sum.Recovered)
	assert.Equal(t, uint64(1), sum.TornRecords)

	// A second start finds nothing more to do.
	w3 := mustWriter(t, WriterOpts{Root: root})
	assert.Zero(t, w3.Stats().Recovered)
	require.NoError(t, w3.Close())
}

// TestOrphanTmpAndLiveSegment: a .tmp without a segment is removed and
// counted; a live writer's locked segment is left alone by a second
// writer starting on the same root.
func TestOrphanTmpAndLiveSegment(t *testing.T) {
	root := t.TempDir()
	a := mustWriter(t, WriterOpts{Root: root, FlushInterval: 10 * time.Millisecond})
	logGenerated(a, rand.New(rand.NewPCG(24, 24)), 0, 100)
	waitWritten(t, a, 100)
	wals, _ := walFiles(t, root)
	require.Len(t, wals, 1)
	orphan := filepath.Join(filepath.Dir(wals[0]), "dec-old-crashed-000001.parquet.tmp")
	require.NoError(t, os.WriteFile(orphan, []byte("PAR1 half a file"), 0o644))

	b := mustWriter(t, WriterOpts{Root: root})
	st := b.Stats()
	assert.Equal(t, uint64(1), st.OrphanTmp)
	assert.Zero(t, st.RecoveredSegments, "live segment left alone")
	assert.NoFileExists(t, orphan)
	assert.FileExists(t, wals[0])
	require.NoError(t, b.Close())

	// Meanwhile the live file's rows are visible through its segment.
	got, errs := readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true})
	require.Empty(t, errs)
	assert.Len(t, got, 100)
	got, _ = readAll(t, ReaderOpts{Paths: []string{root}})
	assert.Empty(t, got, "without IncludeOpen the open file is invisible")

	require.NoError(t, a.Close())
	got, errs = readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true})
	require.Empty(t, errs)
	assert.Len(t, got, 100, "no duplicates after commit")
	wals, tmps := walFiles(t, root)
	assert.Empty(t, wals)
	assert.Empty(t, tmps)
}

// TestIncludeOpenVisibility: rows are visible to readers and Inspect
// within about a FlushInterval, with the writer still running.
func TestIncludeOpenVisibility(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, FlushInterval: 100 * time.Millisecond})
	defer w.Close()
	logGenerated(w, rand.New(rand.NewPCG(25, 25)), 0, 20)
	start := time.Now()
	require.Eventually(t, func() bool {
		s, err := Inspect(t.Context(), root)
		require.NoError(t, err)
		return s.Rows == 20
	}, 5*time.Second, 10*time.Millisecond)
	t.Logf("20 rows visible after %v", time.Since(start))
	s, err := Inspect(t.Context(), root)
	require.NoError(t, err)
	assert.Equal(t, int64(20), s.OpenRows)
	assert.Equal(t, 1, s.OpenSegments)
	s, err = InspectWith(t.Context(), InspectOpts{Paths: []string{root}})
	require.NoError(t, err)
	assert.Zero(t, s.Rows)
}

// TestDrainAccounting: loggers keep going while the writer closes. Every
// attempt ends up committed or counted as dropped, and the sidecar (and
// Inspect) show the final count, including rows logged after Close.
func TestDrainAccounting(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, BatchRows: 16, QueueBatches: 4, FlushInterval: 5 * time.Millisecond})
	var attempts atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(26, uint64(g)))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := genRecord(rng, i, time.Microsecond)
				w.Log(&rec)
				attempts.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, w.Close())
	time.Sleep(50 * time.Millisecond) // Log after Close
	close(stop)
	wg.Wait()

	st := w.Stats()
	assert.Equal(t, attempts.Load(), st.Committed+st.Failed+st.Dropped, "every attempt accounted for")
	assert.Equal(t, st.Enqueued, st.Committed, "Close writes every accepted row")
	assert.Positive(t, st.DroppedClosed)
	assert.LessOrEqual(t, st.DroppedClosed, st.Dropped)

	b, err := os.ReadFile(filepath.Join(root, StatsDir, TableDecisions+"-"+w.p.o.WriterID+".json"))
	require.NoError(t, err)
	var side WriterStatsFile
	require.NoError(t, json.Unmarshal(b, &side))
	assert.True(t, side.Closed)
	assert.Equal(t, st.Dropped, side.Dropped, "sidecar has the drops after Close")
	assert.Equal(t, st.DroppedClosed, side.DroppedClosed)

	s, err := Inspect(t.Context(), root)
	require.NoError(t, err)
	assert.Equal(t, int64(st.Committed), s.Rows)
	assert.Equal(t, st.Dropped, s.Lost)
	assert.Equal(t, st.DroppedClosed, s.DroppedClosed)
}

// FuzzWALSegment: no input makes the segment decoder panic, allocate
// beyond the input, or yield rows it did not count. Like FuzzReader, run
// it with a short minimisation budget on a loaded machine:
//
//	go test ./decisionlog -run '^$' -fuzz FuzzWALSegment -fuzztime 60s -fuzzminimizetime 1s
func FuzzWALSegment(f *testing.F) {
	rows := preparedRows(12, 27)
	seg := segmentOf(rows, 5)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add([]byte(walMagic))
	f.Add([]byte{})
	fb := []byte(walMagic)
	fb = append(fb, encodeRecord[FeedbackRow](feedbackCodec{}, nil, []FeedbackRow{{SchemaVersion: 1, RequestID: "r"}})...)
	f.Add(fb)
	f.Fuzz(func(t *testing.T, data []byte) {
		var n int64
		ss, _, err := scanSegment[Row](rowCodec{}, bytes.NewReader(data), int64(len(data)), make([]Row, 4), func(rs []Row) bool {
			n += int64(len(rs))
			return true
		})
		if err != nil {
			return
		}
		require.Equal(t, ss.Rows, n)
		require.LessOrEqual(t, ss.TornBytes, int64(len(data)))
		_, _, err = scanSegment[FeedbackRow](feedbackCodec{}, bytes.NewReader(data), int64(len(data)), make([]FeedbackRow, 4), func([]FeedbackRow) bool { return true })
		require.NoError(t, err)
	})
}

// BenchmarkWALEncode is the disk goroutine's added cost per row: encoding
// a batch of rows as one WAL record (the append and fsync are per batch).
func BenchmarkWALEncode(b *testing.B) {
	rows := preparedRows(1024, 28)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodeRecord[Row](rowCodec{}, buf, rows)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	b.ReportMetric(float64(len(buf))/float64(len(rows)), "bytes/row")
}

// TestPinnedPassesOverALiveLog: Readers sharing a Pin see the rows the
// first one saw, while the writer keeps appending and after the open file
// is finished (read then from its Parquet file, not its segment).
func TestPinnedPassesOverALiveLog(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, FlushInterval: 10 * time.Millisecond})
	rng := rand.New(rand.NewPCG(25, 25))
	logGenerated(w, rng, 0, 100)
	waitWritten(t, w, 100)
	ids := func(recs []decision.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.Request.ID)
		}
		return out
	}
	pin := &Pin{}
	first, errs := readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true, Pin: pin})
	require.Empty(t, errs)
	require.Len(t, first, 100)

	logGenerated(w, rng, 100, 150)
	waitWritten(t, w, 150)
	unpinned, _ := readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true})
	require.Len(t, unpinned, 150, "the log grew")
	again, errs := readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true, Pin: pin})
	require.Empty(t, errs)
	assert.Equal(t, ids(first), ids(again), "a pinned pass reads the first pass's rows")

	require.NoError(t, w.Close())
	finished, errs := readAll(t, ReaderOpts{Paths: []string{root}, IncludeOpen: true, Pin: pin})
	require.Empty(t, errs)
	assert.Equal(t, ids(first), ids(finished), "the same rows once the file is finished")
}
