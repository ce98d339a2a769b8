package replay_test

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/replay"
)

// BenchmarkEvaluate runs every estimator (two passes: cross-fitted ridge,
// then scoring; 200 bootstrap resamples) over 200k synthetic rows streamed
// from a generator, one target, generation included; it reports rows/s and
// ns per row.
func BenchmarkEvaluate(b *testing.B) {
	const rows = 200_000
	b.ReportAllocs()
	src := synthSource{N: rows, Seed: 1, Vector: true}
	targets := synthTargets(1)[1:]
	for b.Loop() {
		_, err := replay.Evaluate(context.Background(), src, targets, replay.Opts{})
		require.NoError(b, err)
	}
	perRow := b.Elapsed().Seconds() / float64(b.N) / rows
	b.ReportMetric(1/perRow, "rows/s")
	b.ReportMetric(perRow*1e9, "ns/row")
}

// TestTenMillionRows is the 10M-row streaming benchmark, gated because it
// takes seconds: ROUTELAB_REPLAY_10M=1 go test -run TenMillion -v ./replay.
// It prints the wall time and the peak resident memory (VmHWM).
func TestTenMillionRows(t *testing.T) {
	if os.Getenv("ROUTELAB_REPLAY_10M") == "" {
		t.Skip("set ROUTELAB_REPLAY_10M=1 to run the 10M-row benchmark")
	}
	const n = 10_000_000
	start := time.Now()
	res, err := replay.Evaluate(context.Background(), synthSource{N: n, Seed: 1, Vector: true}, synthTargets(1)[1:], replay.Opts{})
	require.NoError(t, err)
	el := time.Since(start)
	for _, r := range res {
		t.Logf("%-11s %.5f [%.5f, %.5f] truth %.5f", r.Estimator, r.Value, r.CILow, r.CIHigh, synthTruth[r.Policy])
	}
	t.Logf("10M rows, %d estimators, 2 passes, 200 bootstrap resamples: %v (%.2f M rows/s); peak RSS %s",
		len(res), el.Round(time.Millisecond), n/el.Seconds()/1e6, vmHWM(t))
}

func vmHWM(t *testing.T) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
