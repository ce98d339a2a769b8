package experiments

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMeanCIHandComputed(t *testing.T) {
	// xs = 1..5: mean 3, sd = √2.5, t(4, 0.975) = 2.776445105 (tables),
	// half-width = 2.776445105·√2.5/√5 = 2.776445105/√2 = 1.963243...
	iv := MeanCI([]float64{1, 2, 3, 4, 5}, 0.95)
	assert.Equal(t, 5, iv.N)
	assert.InDelta(t, 3.0, iv.Mean, 1e-12)
	assert.InDelta(t, math.Sqrt(2.5), iv.SD, 1e-12)
	assert.InDelta(t, 1.9632432, iv.HalfWidth(), 1e-6)
	assert.InDelta(t, 3-1.9632432, iv.Lo, 1e-6)
	assert.InDelta(t, 3+1.9632432, iv.Hi, 1e-6)

	// 90% with n = 10: t(9, 0.95) = 1.833113 (tables).
	xs := []float64{0.71, 0.69, 0.74, 0.70, 0.72, 0.68, 0.73, 0.71, 0.70, 0.72}
	iv = MeanCI(xs, 0.90)
	var sum, ss float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / 10
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / 9)
	assert.InDelta(t, mean, iv.Mean, 1e-12)
	assert.InDelta(t, 1.833113*sd/math.Sqrt(10), iv.HalfWidth(), 1e-6)
}

func TestMeanCIDegenerate(t *testing.T) {
	iv := MeanCI(nil, 0.95)
	assert.True(t, math.IsNaN(iv.Mean))
	assert.False(t, iv.Defined())

	iv = MeanCI([]float64{4.5}, 0.95)
	assert.Equal(t, 4.5, iv.Mean, "one value has a mean")
	assert.False(t, iv.Defined(), "but no interval")

	iv = MeanCI([]float64{2, 2, 2}, 0.95)
	assert.Equal(t, 2.0, iv.Lo)
	assert.Equal(t, 2.0, iv.Hi)
}

// tCDF3 is the Student-t CDF with 3 degrees of freedom in closed form,
// an independent check of the p-value.
func tCDF3(t float64) float64 {
	u := t / math.Sqrt(3)
	return 0.5 + (u/(1+u*u)+math.Atan(u))/math.Pi
}

func TestCompareHandComputed(t *testing.T) {
	x := []float64{1.1, 2.3, 2.9, 4.2}
	base := []float64{1, 2, 3, 4}
	// d = 0.1, 0.3, −0.1, 0.2: mean 0.125, sd = √(0.0875/3),
	// t(3, 0.975) = 3.182446 (tables).
	c, err := Compare(x, base, 0.95, true)
	require.NoError(t, err)
	sd := math.Sqrt(0.0875 / 3)
	assert.InDelta(t, 0.125, c.Diff.Mean, 1e-12)
	assert.InDelta(t, sd, c.Diff.SD, 1e-12)
	assert.InDelta(t, 3.182446*sd/2, c.Diff.HalfWidth(), 1e-6)
	tstat := 0.125 / (sd / 2)
	assert.InDelta(t, 2*(1-tCDF3(tstat)), c.P, 1e-9)
	assert.Equal(t, NoEvidence, c.Verdict, "interval [%.3f, %.3f] contains 0", c.Diff.Lo, c.Diff.Hi)
}

func TestCompareVerdicts(t *testing.T) {
	base := []float64{1, 2, 3, 4, 5}
	up := []float64{1.5, 2.6, 3.4, 4.55, 5.5} // +0.5 ± 0.1
	tests := []struct {
		name   string
		x      []float64
		higher bool
		want   Verdict
	}{
		{"higher is better, up", up, true, Better},
		{"lower is better, up", up, false, Worse},
		{"higher is better, down", base[:], true, NoEvidence},
		{"identical", []float64{1, 2, 3, 4, 5}, true, NoEvidence},
		{"constant shift", []float64{0, 1, 2, 3, 4}, true, Worse},
		{"constant shift, lower better", []float64{0, 1, 2, 3, 4}, false, Better},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compare(tt.x, base, 0.95, tt.higher)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Verdict, "diff %v [%v, %v] p %v", c.Diff.Mean, c.Diff.Lo, c.Diff.Hi, c.P)
		})
	}
	c, err := Compare([]float64{1, 2, 3, 4, 5}, base, 0.95, true)
	require.NoError(t, err)
	assert.Equal(t, 1.0, c.P, "identical samples")
	c, err = Compare([]float64{2}, []float64{1}, 0.95, true)
	require.NoError(t, err)
	assert.Equal(t, NotAvailable, c.Verdict, "one seed")
	_, err = Compare([]float64{1, 2}, []float64{1}, 0.95, true)
	assert.Error(t, err, "unpaired")
}

// TestMeanCICoverage: over many normal samples the 95% (and 80%) t
// intervals cover the true mean at their nominal rate, for small n where
// the normal quantile would under-cover. 4000 replications give a binomial
// sd of 0.0034 at 95%; the tolerance is about 3 sd.
func TestMeanCICoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for _, level := range []float64{0.95, 0.80} {
		for _, n := range []int{3, 5, 10} {
			t.Run(fmt.Sprintf("level=%v/n=%d", level, n), func(t *testing.T) {
				const reps, mu = 4000, 0.7
				covered := 0
				xs := make([]float64, n)
				for range reps {
					for i := range xs {
						xs[i] = mu + 0.05*rng.NormFloat64()
					}
					iv := MeanCI(xs, level)
					if iv.Lo <= mu && mu <= iv.Hi {
						covered++
					}
				}
				got := float64(covered) / reps
				tol := 3 * math.Sqrt(level*(1-level)/reps)
				assert.InDelta(t, level, got, tol, "coverage at n=%d", n)
			})
		}
	}
}

func ExampleMeanCI() {
	iv := MeanCI([]float64{0.71, 0.74, 0.69, 0.72, 0.70}, 0.95)
	fmt.Printf("%.4f ± %.4f (n=%d)\n", iv.Mean, iv.HalfWidth(), iv.N)
	// Output: 0.7120 ± 0.0239 (n=5)
}

func ExampleCompare() {
	// Per-seed mean rewards of a policy and the baseline on the same seeds.
	thompson := []float64{0.716, 0.721, 0.709, 0.718, 0.713}
	random := []float64{0.666, 0.672, 0.661, 0.670, 0.665}
	c, _ := Compare(thompson, random, 0.95, true)
	fmt.Printf("Δ = %+.4f [%+.4f, %+.4f]: %s\n", c.Diff.Mean, c.Diff.Lo, c.Diff.Hi, c.Verdict)
	// Output: Δ = +0.0486 [+0.0475, +0.0497]: significantly better
}
