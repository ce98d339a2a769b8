package fromlogs

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Bins merge pairwise when there are too many, keeping every count.
func TestBinsCoarsen(t *testing.T) {
	a := &armCal{bins: map[int64]*binStat{}, binWidth: binSeconds}
	const n = maxBins + maxBins/4
	for i := int64(0); i < n; i++ {
		b := a.bin(1_700_000_000 + i*binSeconds)
		b.attempts++
		if i%2 == 0 {
			b.failed++
		}
	}
	assert.EqualValues(t, 2*binSeconds, a.binWidth)
	assert.LessOrEqual(t, len(a.bins), maxBins)
	var att, failed int64
	for _, b := range a.bins {
		att += b.attempts
		failed += b.failed
		assert.LessOrEqual(t, b.attempts, int64(2))
	}
	assert.EqualValues(t, n, att)
	assert.EqualValues(t, n/2, failed)
}

func TestKSVerdict(t *testing.T) {
	// Tabulated two-sample critical values at α = 0.05: 1.358·√(2/n).
	for _, tc := range []struct {
		n    int
		crit float64
	}{{100, 0.1921}, {1000, 0.0607}, {10000, 0.0192}} {
		if got := KSCritical(tc.n, tc.n); math.Abs(got-tc.crit) > 5e-4 {
			t.Errorf("KSCritical(%d, %d) = %.4f, want %.4f", tc.n, tc.n, got, tc.crit)
		}
	}
	for _, tc := range []struct {
		d    float64
		n    int
		want string
	}{
		{0.15, 100, FitGood},    // within 0.192
		{0.25, 100, FitPoor},    // beyond both
		{0.05, 10000, FitClose}, // rejected (0.0192) but close
		{0.01, 10000, FitGood},
		{0.3, 0, FitUnknown},
	} {
		if got := KSVerdict(tc.d, tc.n, tc.n); got != tc.want {
			t.Errorf("KSVerdict(%v, %d) = %q, want %q", tc.d, tc.n, got, tc.want)
		}
	}
}
