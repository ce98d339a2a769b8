package logship

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

// writeLogs writes n decisions (unique request ids, one a minute, so
// several hour partitions) as finished files of 40 rows under root, plus
// an open file's .tmp and .wal that must never be shipped. It returns the
// finished files' contents by key.
func writeLogs(t *testing.T, root string, n int64) map[string][]byte {
	t.Helper()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, MaxFileRows: 40, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	base := time.Date(2026, 12, 4, 7, 30, 0, 0, time.UTC)
	i := 0
	err = synthlog.Source{N: n, Seed: 3}.Scan(context.Background(), func(r *decision.Record) error {
		r.Request.ID = fmt.Sprintf("req-%04d", i)
		r.Time = base.Add(time.Duration(i) * time.Minute)
		i++
		w.Log(r)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	open := filepath.Join(root, "decisions", "dt=2026-12-04", "hour=07", "dec-open")
	require.NoError(t, os.WriteFile(open+".parquet.tmp", []byte("half a file"), 0o644))
	require.NoError(t, os.WriteFile(open+".parquet.wal", []byte("a segment"), 0o644))

	files, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	require.Greater(t, len(files), 3, "several files to ship")
	want := map[string][]byte{}
	for _, f := range files {
		rel, err := filepath.Rel(root, f)
		require.NoError(t, err)
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		want[filepath.ToSlash(rel)] = b
	}
	return want
}

// bucketContents lists every object of the bucket with its bytes.
func bucketContents(t *testing.T, b *blob.Bucket) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	it := b.List(nil)
	for {
		obj, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		data, err := b.ReadAll(context.Background(), obj.Key)
		require.NoError(t, err)
		got[obj.Key] = data
	}
	return got
}

func openBucket(t *testing.T, dir string) *blob.Bucket {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	b, err := fileblob.OpenBucket(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// readRows fetches the bucket into a directory and reads it back as a log.
func readRows(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	dir := t.TempDir()
	_, err := Fetch(context.Background(), b, dir, FetchOpts{})
	require.NoError(t, err)
	var ids []string
	for rec, err := range decisionlog.NewReader(decisionlog.ReaderOpts{Paths: []string{dir}}).Records(context.Background()) {
		require.NoError(t, err)
		ids = append(ids, rec.Request.ID)
	}
	return ids
}

func TestShipPassUploadsVerifiesDeletes(t *testing.T) {
	root := t.TempDir()
	want := writeLogs(t, root, 200)
	b := openBucket(t, t.TempDir())
	s, err := New(Opts{Root: root, Bucket: b, DeleteAfterUpload: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Pass(context.Background()))

	assert.Equal(t, want, bucketContents(t, b), "the bucket holds every finished file, byte for byte, and nothing else")
	left, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	assert.Empty(t, left, "shipped files deleted locally")
	open := filepath.Join(root, "decisions", "dt=2026-12-04", "hour=07", "dec-open")
	assert.FileExists(t, open+".parquet.tmp", "open file untouched")
	assert.FileExists(t, open+".parquet.wal", "open segment untouched")
	st := s.Stats()
	assert.Equal(t, uint64(len(want)), st.Uploaded)
	assert.Equal(t, uint64(len(want)), st.Deleted)
	assert.Zero(t, st.Pending)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	assert.Equal(t, float64(len(want)), testutil.ToFloat64(s.Collectors()[0]), "uploaded_files_total")
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 5, n)

	// A second pass finds nothing to do.
	require.NoError(t, s.Pass(context.Background()))
	assert.Equal(t, uint64(len(want)), s.Stats().Uploaded)

	ids := readRows(t, b)
	assert.Len(t, ids, 200)
}

// TestShipKeepsFilesAndManifest: without delete_after_upload, files stay
// and the manifest keeps them from being uploaded again, across restarts.
func TestShipKeepsFilesAndManifest(t *testing.T) {
	root := t.TempDir()
	want := writeLogs(t, root, 120)
	b := openBucket(t, t.TempDir())
	for range 2 {
		s, err := New(Opts{Root: root, Bucket: b})
		require.NoError(t, err)
		require.NoError(t, s.Pass(context.Background()))
		require.NoError(t, s.Close())
	}
	assert.Equal(t, want, bucketContents(t, b))
	left, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	assert.Len(t, left, len(want), "files kept")
	man, err := os.ReadFile(filepath.Join(root, ManifestPath))
	require.NoError(t, err)
	assert.Equal(t, len(want), strings.Count(string(man), "\n"), "one manifest line per file, none repeated")

	s, err := New(Opts{Root: root, Bucket: b})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Pass(context.Background()))
	assert.Zero(t, s.Stats().Uploaded, "a restarted shipper uploads nothing again")
}

// TestShipRetriesThenFails: an upload failing mid-way is retried with
// backoff; one that never succeeds is counted, left on disk and pending,
// and shipped by a later pass.
func TestShipRetriesThenFails(t *testing.T) {
	root := t.TempDir()
	want := writeLogs(t, root, 120)
	b := openBucket(t, t.TempDir())
	failures := map[string]int{}
	broken := true
	s, err := New(Opts{Root: root, Bucket: b, DeleteAfterUpload: true, MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		afterWrite: func(key string, committed bool) error {
			if committed {
				return nil
			}
			failures[key]++
			if broken || failures[key] < 3 {
				return errors.New("connection reset")
			}
			return nil
		}})
	require.NoError(t, err)
	defer s.Close()
	err = s.Pass(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection reset")
	st := s.Stats()
	assert.Equal(t, uint64(len(want)), st.Failed)
	assert.Equal(t, len(want), st.Pending)
	assert.Empty(t, bucketContents(t, b), "aborted uploads leave no object")
	for k, n := range failures {
		assert.Equal(t, 3, n, "%s: MaxAttempts tries", k)
	}
	left, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	assert.Len(t, left, len(want), "nothing deleted")

	broken = false
	clear(failures)
	require.NoError(t, s.Pass(context.Background()))
	assert.Equal(t, want, bucketContents(t, b))
	assert.Zero(t, s.Stats().Pending)
	for k, n := range failures {
		assert.Equal(t, 3, n, "%s: two failures, then success", k)
	}
}

func TestNewErrors(t *testing.T) {
	b := openBucket(t, t.TempDir())
	_, err := New(Opts{Bucket: b})
	assert.ErrorContains(t, err, "no log root")
	_, err = New(Opts{Root: t.TempDir()})
	assert.ErrorContains(t, err, "no bucket")
	_, err = New(Opts{Root: t.TempDir(), Bucket: b, Interval: -1})
	assert.ErrorContains(t, err, ">= 0")
}

func TestFetchEmptyBucket(t *testing.T) {
	b := openBucket(t, t.TempDir())
	require.NoError(t, b.WriteAll(context.Background(), "_stats/x.parquet", []byte("x"), nil))
	_, err := Fetch(context.Background(), b, t.TempDir(), FetchOpts{})
	assert.ErrorContains(t, err, "no decision-log file")
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{
		"s3://bucket/prefix": true, "file:///var/logs": true, "gs://b": true, "azblob://c?prefix=x/": true,
		"logs": false, "/var/logs": false, "./a://b": false, "://x": false, "s3://": false,
	} {
		assert.Equal(t, want, IsURL(s), s)
	}
}

func TestIsFinishedKey(t *testing.T) {
	for k, want := range map[string]bool{
		"decisions/dt=2026-12-04/hour=07/dec-1.parquet": true,
		"feedback/dt=2026-12-04/hour=07/fb-1.parquet":   true,
		"dec-1.parquet": true,
		"decisions/dt=2026-12-04/hour=07/dec-1.parquet.tmp": false,
		"decisions/dt=2026-12-04/hour=07/dec-1.parquet.wal": false,
		"_stats/decisions-x.json":                           false,
		"_ship/x.parquet":                                   false,
		"a/.hidden/x.parquet":                               false,
		".x.parquet":                                        false,
		"a//x.parquet":                                      false,
	} {
		assert.Equal(t, want, decisionlog.IsFinishedKey(k), k)
	}
	from, to := time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	for k, want := range map[string]bool{
		"decisions/dt=2026-12-04/hour=07/dec-1.parquet": true,
		"decisions/dt=2026-12-04/hour=08/dec-1.parquet": false,
		"decisions/dt=2026-12-04/hour=06/dec-1.parquet": false,
		"decisions/dt=2026-12-03/hour=07/dec-1.parquet": false,
		"feedback/dt=2026-12-05/hour=01/fb-1.parquet":   true,
		"dec-1.parquet": true,
	} {
		assert.Equal(t, want, decisionlog.KeyInRange(k, from, to), "KeyInRange(%s)", k)
	}
	assert.True(t, decisionlog.KeyInRange("decisions/dt=2026-12-03/hour=07/dec-1.parquet", time.Time{}, time.Time{}), "unbounded")
}

// The kill -9 test runs the shipper in a child process (this test binary
// re-executed) that stops, blocking, at a chosen point of an upload and
// says so on stdout; the parent then kills it with SIGKILL.
const (
	envChild  = "ROUTELAB_LOGSHIP_CHILD" // "mid" or "committed": where to stop
	envRoot   = "ROUTELAB_LOGSHIP_ROOT"
	envBucket = "ROUTELAB_LOGSHIP_BUCKET"
	envNth    = "ROUTELAB_LOGSHIP_NTH" // stop at the Nth upload (from 1)
)

// TestShipperChildProcess is the child; it does nothing in a normal run.
func TestShipperChildProcess(t *testing.T) {
	where := os.Getenv(envChild)
	if where == "" {
		t.Skip("the child process of TestKill9MidUpload")
	}
	var nth int
	_, _ = fmt.Sscan(os.Getenv(envNth), &nth)
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, "file://"+os.Getenv(envBucket))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	seen := 0
	s, err := New(Opts{Root: os.Getenv(envRoot), Bucket: b, DeleteAfterUpload: true, afterWrite: func(key string, committed bool) error {
		if committed != (where == "committed") {
			return nil
		}
		if seen++; seen == nth {
			fmt.Printf("STOPPED %s %s\n", where, key)
			select {} // wait for SIGKILL
		}
		return nil
	}})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	err = s.Pass(ctx)
	fmt.Println("PASS DONE", err)
	os.Exit(0)
}

// killChildAt runs the child shipper until it reports stopping at the nth
// upload's point where, then kills it with SIGKILL; it returns the key it
// was shipping.
func killChildAt(t *testing.T, root, bucket, where string, nth int) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestShipperChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+where, envRoot+"="+root, envBucket+"="+bucket, fmt.Sprint(envNth, "=", nth),
		"TMPDIR="+filepath.Join(filepath.Dir(bucket), "tmp"))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	var key string
	for sc.Scan() {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "STOPPED "+where+" "); ok {
			key = k
			break
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "PASS DONE") {
			break
		}
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL
	_ = cmd.Wait()
	require.NotEmpty(t, key, "the child stopped %s upload %d", where, nth)
	return key
}

// TestKill9MidUpload: a shipper process killed with SIGKILL in the middle
// of an upload, and another killed after an upload committed but before
// it was recorded, then a restarted shipper: the bucket ends up with every
// finished file exactly once, byte for byte (no extra object, no
// duplicate row), and the local files are gone only because they were
// shipped.
func TestKill9MidUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	base := t.TempDir()
	root, bucketDir := filepath.Join(base, "logs"), filepath.Join(base, "bucket")
	require.NoError(t, os.MkdirAll(filepath.Join(base, "tmp"), 0o755))
	want := writeLogs(t, root, 400)
	b := openBucket(t, bucketDir)

	// 1. Killed mid-way through the 3rd upload: two files shipped and
	// deleted, the third still local and not an object.
	key := killChildAt(t, root, bucketDir, "mid", 3)
	got := bucketContents(t, b)
	assert.Len(t, got, 2)
	assert.NotContains(t, got, key, "a killed upload is no object")
	assert.FileExists(t, filepath.Join(root, filepath.FromSlash(key)), "the file being uploaded is kept")
	for k, v := range got {
		assert.Equal(t, want[k], v, "%s intact", k)
	}

	// 2. Killed after the 2nd upload of the next run committed, before
	// the manifest recorded it.
	key2 := killChildAt(t, root, bucketDir, "committed", 2)
	got = bucketContents(t, b)
	assert.Equal(t, want[key2], got[key2], "the committed object is complete")
	assert.FileExists(t, filepath.Join(root, filepath.FromSlash(key2)), "not deleted: not yet recorded")

	// 3. A restarted shipper finishes the work.
	s, err := New(Opts{Root: root, Bucket: b, DeleteAfterUpload: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Pass(context.Background()))
	assert.GreaterOrEqual(t, s.Stats().Skipped, uint64(1), "the committed-but-unrecorded file was found in the bucket, not uploaded again")

	assert.Equal(t, want, bucketContents(t, b), "every file exactly once, byte for byte")
	left, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	assert.Empty(t, left)
	ids := readRows(t, b)
	assert.Len(t, ids, 400, "no row lost")
	slices.Sort(ids)
	assert.Len(t, slices.Compact(ids), 400, "no row duplicated")
}

// TestFetchTimeRange: Fetch with a range skips the decision files of
// hour partitions outside it, and what it fetches reads as the same rows
// as the whole prefix read with that range.
func TestFetchTimeRange(t *testing.T) {
	root := t.TempDir()
	want := writeLogs(t, root, 200) // 07:30 to 10:49, a row a minute
	b := openBucket(t, t.TempDir())
	s, err := New(Opts{Root: root, Bucket: b})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Pass(context.Background()))

	from, to := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	st, err := Fetch(context.Background(), b, dir, FetchOpts{From: from, To: to})
	require.NoError(t, err)
	got, err := decisionlog.FinishedFiles(dir)
	require.NoError(t, err)
	require.Len(t, got, st.Files)
	require.NotEmpty(t, got)
	for _, f := range got {
		assert.Contains(t, filepath.ToSlash(f), "/hour=09/", "only the 09:00 partition")
	}
	assert.Less(t, st.Files, len(want))

	count := func(dir string) int {
		n := 0
		for _, err := range decisionlog.NewReader(decisionlog.ReaderOpts{Paths: []string{dir}, From: from, To: to}).Records(context.Background()) {
			require.NoError(t, err)
			n++
		}
		return n
	}
	assert.Equal(t, 60, count(dir), "an hour of rows, one a minute")

	_, err = Fetch(context.Background(), b, t.TempDir(), FetchOpts{From: from.AddDate(1, 0, 0)})
	assert.NoError(t, err, "log files outside the range: nothing to fetch, not an error")
}
