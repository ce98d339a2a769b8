package decisionlog

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const crashEnv = "ROUTELAB_DECISIONLOG_CRASH_ROOT"

// Crash child settings, shared with the parent's bound on lost rows.
const (
	crashFileRows   = 700
	crashBatchRows  = 64
	crashQueue      = 4
	crashPrintEvery = 100
)

// TestCrashChild is the child process of TestCrashSIGKILL: it logs records
// forever, printing "COMMIT path rows" after each file is renamed into
// place and "LOGGED n" every crashPrintEvery rows.
func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashEnv)
	if root == "" {
		t.Skip("child of TestCrashSIGKILL")
	}
	out := os.Stdout // unbuffered: a line is in the pipe when Fprintf returns
	w, err := NewWriter(WriterOpts{Root: root, Full: FullBlock, MaxFileRows: crashFileRows,
		BatchRows: crashBatchRows, QueueBatches: crashQueue,
		OnCommit: func(c CommitInfo) { fmt.Fprintf(out, "COMMIT %s %d\n", c.Path, c.Rows) }})
	if err != nil {
		fmt.Fprintln(out, "ERROR", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(13, 13))
	for i := 0; ; i++ {
		rec := genRecord(rng, i, 0) // one partition: at most one open file
		w.Log(&rec)
		if (i+1)%crashPrintEvery == 0 {
			fmt.Fprintf(out, "LOGGED %d\n", i+1)
		}
	}
}

// TestCrashSIGKILL kills a writing process with SIGKILL. Afterwards every
// finished file reads cleanly, holds exactly the rows the child reported
// for it, and only rows still in memory or in the open .tmp file are lost.
func TestCrashSIGKILL(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+root)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	reported := map[string]int64{}
	var logged int64
	sc := bufio.NewScanner(stdout)
	killed := false
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "COMMIT":
			n, err := strconv.ParseInt(f[2], 10, 64)
			require.NoError(t, err)
			reported[f[1]] = n
		case len(f) == 2 && f[0] == "LOGGED":
			logged, err = strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
		case len(f) > 0 && f[0] == "ERROR":
			t.Fatalf("child: %s", sc.Text())
		}
		// Kill mid-stream, between commits.
		if !killed && len(reported) >= 5 && logged%crashFileRows > 300 {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	err = cmd.Wait()
	require.True(t, killed, "child stopped before it was killed: %v", err)

	decs, _, errs := listFiles([]string{root}, false)
	require.Empty(t, errs)
	var extra []string
	for _, p := range decs {
		if _, ok := reported[p]; !ok {
			extra = append(extra, p)
		}
	}
	for p := range reported {
		assert.FileExists(t, p, "reported file is on disk")
	}
	// The child may die between a rename and its print: at most one file.
	require.LessOrEqual(t, len(extra), 1, "unreported finished files: %v", extra)

	var want int64
	for _, n := range reported {
		want += n
	}
	perFile := map[string]int64{}
	var got int64
	for rec, err := range NewReader(ReaderOpts{Paths: []string{root}}).rows(t.Context()) {
		require.NoError(t, err, "every finished file reads cleanly")
		require.NoError(t, rec.err)
		perFile[rec.path]++
		got++
	}
	for p, n := range reported {
		assert.Equal(t, n, perFile[p], "rows in %s", p)
	}
	for _, p := range extra {
		want += perFile[p]
		assert.Equal(t, int64(crashFileRows), perFile[p], "unreported file %s is complete", p)
	}
	assert.Equal(t, want, got)

	tmps, err := filepath.Glob(filepath.Join(root, TableDecisions, "*", "*", "*.tmp"))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(tmps), 1, "at most the one in-flight file is left as .tmp")
	// Lost rows: logged before the kill (< logged + crashPrintEvery) minus
	// committed; bounded by the open file plus the queue.
	lost := logged + crashPrintEvery - got
	assert.LessOrEqual(t, lost, int64(crashFileRows+crashBatchRows*crashQueue+crashPrintEvery),
		"lost %d rows: more than the in-flight file and queue", lost)
	t.Logf("killed after %d logged rows: %d files, %d rows committed and read back, %d .tmp left", logged, len(decs), got, len(tmps))
}

const walCrashEnv = "ROUTELAB_DECISIONLOG_WALCRASH_ROOT"

// Steady rate of the WAL crash child: walCrashRows rows every walCrashTick.
const (
	walCrashTick = 5 * time.Millisecond
	walCrashRows = 10 // 2000 rows/s
	walCrashRate = int64(walCrashRows * int(time.Second/walCrashTick))
)

// TestCrashWALChild is the child of TestCrashWALSIGKILL: a writer with the
// default options (5-minute files, 1 s FlushInterval) logging at a steady
// 2000 rows/s, printing "LOGGED n" after Log returned for rows 0..n-1.
func TestCrashWALChild(t *testing.T) {
	root := os.Getenv(walCrashEnv)
	if root == "" {
		t.Skip("child of TestCrashWALSIGKILL")
	}
	out := os.Stdout
	w, err := NewWriter(WriterOpts{Root: root, Full: FullBlock})
	if err != nil {
		fmt.Fprintln(out, "ERROR", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(14, 14))
	tick := time.NewTicker(walCrashTick)
	for i := 0; ; {
		<-tick.C
		for range walCrashRows {
			rec := genRecord(rng, i, 0)
			w.Log(&rec)
			i++
		}
		fmt.Fprintf(out, "LOGGED %d\n", i)
	}
}

// TestCrashWALSIGKILL kills a writer (default rotation: nothing committed
// yet) with SIGKILL and starts a new writer on the same root: recovery
// turns the dead writer's WAL segment into a committed file holding a
// prefix of the logged rows, losing at most the last second plus one
// FlushInterval of acknowledged rows; every file reads cleanly and no
// .tmp or .wal is left.
func TestCrashWALSIGKILL(t *testing.T) {
	if os.Getenv(walCrashEnv) != "" || os.Getenv(crashEnv) != "" {
		t.Skip("in a child")
	}
	if testing.Short() {
		t.Skip("runs a child process for a few seconds")
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWALChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), walCrashEnv+"="+root)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()

	var logged int64
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "LOGGED":
			logged, err = strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
		case len(f) > 0 && f[0] == "ERROR":
			t.Fatalf("child: %s", sc.Text())
		}
		if !killed && logged >= 3*walCrashRate+walCrashRate/3 { // ~3.3 s
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	_ = cmd.Wait()
	require.True(t, killed, "child stopped before it was killed")

	w, err := NewWriter(WriterOpts{Root: root})
	require.NoError(t, err)
	st := w.Stats()
	require.NoError(t, w.Close())
	require.NoError(t, w.Err())
	assert.Equal(t, uint64(1), st.RecoveredSegments)
	wals, tmps := walFiles(t, root)
	assert.Empty(t, wals)
	assert.Empty(t, tmps)

	// Read back: a prefix 0..got-1 of the logged rows, each once.
	var got int64
	for rec, err := range NewReader(ReaderOpts{Paths: []string{root}}).Records(t.Context()) {
		require.NoError(t, err, "every file reads cleanly")
		require.Equal(t, fmt.Sprintf("req-%d", got), rec.Request.ID)
		got++
	}
	require.Equal(t, int64(st.Recovered), got)
	lost := logged - got
	bound := 2 * walCrashRate // the last 1 s + one FlushInterval (default 1 s)
	assert.LessOrEqual(t, lost, bound, "lost %d acknowledged rows at %d rows/s", lost, walCrashRate)
	t.Logf("killed after %d acknowledged rows (%d rows/s): recovered %d, lost %d (%.2f s of traffic); torn records %d",
		logged, walCrashRate, got, lost, float64(lost)/float64(walCrashRate), st.TornRecords)
}
