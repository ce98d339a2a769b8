package policy

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/mat"
)

// TestLinearModelStaysAccurateOverManyUpdates feeds one arm 200,000
// updates with features of very different scales and compares the
// incrementally maintained A⁻¹ and θ with a fresh solve from A and b.
func TestLinearModelStaysAccurateOverManyUpdates(t *testing.T) {
	const d, n = 12, 200_000
	m, err := newLinModel("linucb", LinearOpts{Dim: d, Lambda: 1, Refactor: 1000})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, d)
	f := &Features{Vector: x}
	for i := 0; i < n; i++ {
		for j := range x {
			x[j] = 0
			if rng.IntN(3) > 0 {
				x[j] = rng.NormFloat64() * math.Pow(10, float64(j%4)-1)
			}
		}
		x[0] = 1
		_, err := m.vector(f)
		require.NoError(t, err)
		m.update("a", x, 0.3*x[1]-0.01*x[3]+0.1*rng.NormFloat64())
	}
	require.EqualValues(t, n/1000, m.refacts, "re-factorisations")
	a := m.arms[0]
	full := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			full[i*d+j], full[j*d+i] = a.a[i*d+j], a.a[i*d+j]
		}
	}
	var inv mat.Dense
	require.NoError(t, inv.Inverse(mat.NewDense(d, d, full)))
	var theta mat.VecDense
	theta.MulVec(&inv, mat.NewVecDense(d, a.b))
	for i := 0; i < d; i++ {
		assert.InDelta(t, theta.AtVec(i), a.theta[i], 1e-9*(1+math.Abs(theta.AtVec(i))), "theta[%d]", i)
		for j := 0; j < d; j++ {
			assert.InDelta(t, inv.At(i, j), a.ainv[i*d+j], 1e-12+1e-8*math.Abs(inv.At(i, j)), "A⁻¹[%d,%d]", i, j)
		}
	}
	assert.InDelta(t, 0.3, a.theta[1], 0.01)
	assert.NoError(t, checkInverse(full, a.ainv, d))
}
