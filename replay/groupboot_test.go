package replay_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/replay"
)

// TestGroupedBootstrap: on a log with feature vectors and the default
// ridge model, the intervals come from the grouped bootstrap, are the same
// for the same seed and differ for another, and bracket the estimate.
// (Their coverage is TestBootstrapCoverage's vector=true runs.)
func TestGroupedBootstrap(t *testing.T) {
	run := func(seed uint64) []replay.Result {
		res, err := replay.Evaluate(context.Background(), synthSource{N: 60_000, Seed: 9, Vector: true}, synthTargets(1)[1:], replay.Opts{Seed: seed, Bootstrap: 50})
		require.NoError(t, err)
		return res
	}
	a, b, c := run(1), run(1), run(2)
	differs := false
	for i := range a {
		if math.IsNaN(a[i].CILow) {
			assert.True(t, math.IsNaN(b[i].CILow), "%s", a[i].Estimator) // replay on a non-uniform log
			continue
		}
		assert.Contains(t, a[i].Interval, "grouped poisson bootstrap", a[i].Estimator)
		assert.Equal(t, a[i].CILow, b[i].CILow, "same seed, same interval")
		assert.Equal(t, a[i].CIHigh, b[i].CIHigh, "same seed, same interval")
		differs = differs || a[i].CILow != c[i].CILow
		if !a[i].CIClipped {
			assert.LessOrEqual(t, a[i].CILow, a[i].Value, "%s", a[i].Estimator)
			assert.GreaterOrEqual(t, a[i].CIHigh, a[i].Value, "%s", a[i].Estimator)
		}
	}
	assert.True(t, differs, "another seed, other intervals")
}
