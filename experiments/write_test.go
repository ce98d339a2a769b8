package experiments

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smallResults runs smallSpec once for the tests that only read the
// results (under -race a run costs about a second).
var smallResults = func() func(t *testing.T) *Results {
	var (
		once sync.Once
		res  *Results
		err  error
	)
	return func(t *testing.T) *Results {
		t.Helper()
		once.Do(func() {
			res, err = Run(context.Background(), smallSpec(t), Opts{Registry: policy.NewBuiltinRegistry()})
		})
		require.NoError(t, err)
		return res
	}
}()

func TestWriteOutputs(t *testing.T) {
	res := smallResults(t)
	dir := filepath.Join(t.TempDir(), "out")
	a, err := Write(dir, res)
	require.NoError(t, err)

	for _, f := range []string{FileReportMD, FileReportHTML, FileCells, FileWindows, FileSpec} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Positive(t, st.Size(), f)
	}
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmps, "no temporary files left behind")

	figs, err := filepath.Glob(filepath.Join(dir, DirFigures, "*.svg"))
	require.NoError(t, err)
	assert.Len(t, figs, 1+2*2, "oracle-ratio, then regret and shares per scenario")

	html, err := os.ReadFile(filepath.Join(dir, FileReportHTML))
	require.NoError(t, err)
	h := string(html)
	assert.Equal(t, 5, strings.Count(h, "<svg"), "figures inline")
	assert.NotContains(t, h, "<?xml", "no XML prolog inside HTML")
	assert.NotContains(t, h, `src="`, "self-contained: nothing loaded from elsewhere")
	assert.Contains(t, h, "significantly better")
	assert.Contains(t, h, "Cumulative regret — steady")

	md, err := os.ReadFile(filepath.Join(dir, FileReportMD))
	require.NoError(t, err)
	m := string(md)
	assert.Contains(t, m, "| policy | steady | tasks |")
	assert.Contains(t, m, "(figures/oracle-ratio.svg)")
	assert.Contains(t, m, "## Scenario: tasks")
	// The Markdown shows the analysis' numbers.
	ts, _ := a.Summary("steady", "TS", "oracle_ratio")
	assert.Contains(t, m, fmtInterval("%.4f", ts.Interval))
	c, _ := a.Comparison("tasks", "TS", "regret")
	assert.Contains(t, m, fmtRange("%+.1f", c.Diff))

	// spec.yaml reruns the same experiment.
	s2, err := LoadSpec(filepath.Join(dir, FileSpec))
	require.NoError(t, err)
	res2, err := Run(context.Background(), s2, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	for i := range res.Cells {
		assert.Equal(t, zeroWallClock(res.Cells[i].Result), zeroWallClock(res2.Cells[i].Result), "cell %d", i)
	}
}

// TestHTMLEscapesLabels: labels reach the HTML in tables and inside the
// SVG figures; neither may inject markup.
func TestHTMLEscapesLabels(t *testing.T) {
	s, err := ParseSpec([]byte(`
name: esc
policies: [random, {label: "<script>x</script>&", spec: ucb1}]
scenarios: [steady]
seeds: [1, 2]
requests: 500
`), "")
	require.NoError(t, err)
	res, err := Run(context.Background(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	dir := t.TempDir()
	_, err = Write(dir, res)
	require.NoError(t, err)
	html, err := os.ReadFile(filepath.Join(dir, FileReportHTML))
	require.NoError(t, err)
	assert.NotContains(t, string(html), "<script>")
	assert.Contains(t, string(html), "&lt;script&gt;x&lt;/script&gt;&amp;")
}

func TestParquetReadBack(t *testing.T) {
	res := smallResults(t)
	dir := t.TempDir()
	_, err := Write(dir, res)
	require.NoError(t, err)

	cells, err := ReadParquet[CellRow](filepath.Join(dir, FileCells))
	require.NoError(t, err)
	require.Len(t, cells, len(res.Cells))
	for i, row := range cells {
		c := res.Cells[i]
		assert.Equal(t, "small", row.Experiment)
		assert.Equal(t, c.Scenario, row.Scenario)
		assert.Equal(t, c.Policy, row.Policy)
		assert.Equal(t, c.Seed, row.Seed)
		assert.Equal(t, c.PolicySeed, row.PolicySeed)
		assert.Equal(t, c.PolicySpec, row.PolicySpec)
		assert.Equal(t, c.Result.MeanReward, row.MeanReward)
		assert.Equal(t, c.Result.Regret, row.Regret)
		assert.Equal(t, OracleRatio(c.Result), row.OracleRatio)
		assert.Equal(t, c.Result.LatencyP99MS, row.LatencyP99MS)
		assert.Equal(t, c.Result.ArmShares, row.ArmShares)
		assert.Equal(t, int64(c.Result.StatusCounts["ok"]), row.StatusCounts["ok"])
	}

	windows, err := ReadParquet[WindowRow](filepath.Join(dir, FileWindows))
	require.NoError(t, err)
	want := res.WindowRows()
	require.Len(t, windows, len(want))
	assert.Equal(t, want, windows)
	assert.Equal(t, 50*len(res.Cells), len(windows), "requests/50 windows per cell")
}

func TestReadParquetDamaged(t *testing.T) {
	dir := t.TempDir()
	res := smallResults(t)
	path := filepath.Join(dir, FileCells)
	require.NoError(t, writeParquet(path, res.CellRows()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, bad := range [][]byte{nil, []byte("PAR1"), b[:len(b)/2], bytes.Repeat([]byte{0xff}, 64)} {
		require.NoError(t, os.WriteFile(path, bad, 0o644))
		_, err := ReadParquet[CellRow](path)
		assert.Error(t, err, "%d bytes", len(bad))
	}
	_, err = ReadParquet[CellRow](filepath.Join(dir, "missing.parquet"))
	assert.Error(t, err)
}

func TestWriteWithoutPlotsAndOneSeed(t *testing.T) {
	s, err := ParseSpec([]byte(`
name: one
policies: [random, ucb1]
scenarios: [steady, {scenario: tasks, requests: 700}]
seeds: [3]
requests: 1000
report: {plots: false, title: "One seed"}
`), "")
	require.NoError(t, err)
	res, err := Run(context.Background(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	dir := t.TempDir()
	a, err := Write(dir, res)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, DirFigures))
	assert.True(t, os.IsNotExist(err), "no figures directory")
	html, err := os.ReadFile(filepath.Join(dir, FileReportHTML))
	require.NoError(t, err)
	assert.NotContains(t, string(html), "<svg")
	md, err := os.ReadFile(filepath.Join(dir, FileReportMD))
	require.NoError(t, err)
	assert.Contains(t, string(md), "# One seed")
	assert.Contains(t, string(md), "With a single seed there are no intervals")
	assert.Contains(t, string(md), "requests per cell: steady 1000, tasks 700")
	assert.Equal(t, 700, res.Cells[len(res.Cells)-1].Result.Requests)
	c, ok := a.Comparison("steady", "ucb1", "regret")
	require.True(t, ok)
	assert.Equal(t, NotAvailable, c.Verdict)
}

func BenchmarkWrite(b *testing.B) {
	s, err := ParseSpec([]byte(`
name: bench
policies: [random, thompson, ucb1]
scenarios: [steady, tasks]
seeds: {count: 5}
requests: 1000
`), "")
	if err != nil {
		b.Fatal(err)
	}
	res, err := Run(context.Background(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Write(dir, res); err != nil {
			b.Fatal(err)
		}
	}
}
