package policy

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/mat"
)

// TestLinearModelStaysAccurateOverManyUpdates feeds one arm a million
// updates (200,000 under the race detector) with features of very
// different scales and compares the incrementally maintained A⁻¹ and θ
// with a fresh solve from A and b.
func TestLinearModelStaysAccurateOverManyUpdates(t *testing.T) {
	const d = 12
	n := 1_000_000
	if raceOn {
		n = 200_000
	}
	m, err := newLinModel("linucb", LinearOpts{Dim: d, Lambda: 1, Refactor: 1000})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, d)
	f := &decision.Features{Vector: x}
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
	assert.NoError(t, CheckInverse(full, a.ainv, d))
}

// TestDiscountedLinearModelStaysExactlyDescribed checks the forgetting
// model: after many updates spread over arms (some idle for long), each
// arm's A⁻¹ is the inverse of D + lamEff·I, and A = D + λI with D the
// discounted data.
func TestDiscountedLinearModelStaysExactlyDescribed(t *testing.T) {
	const d, n, gamma, lambda = 6, 30_000, 0.999, 0.5
	m, err := newLinModel("linucb", LinearOpts{Dim: d, Lambda: lambda, Gamma: gamma})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, d)
	f := &decision.Features{Vector: x}
	// The exact discounted data of arm "a", kept naively.
	data := make([]float64, d*d)
	bExact := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		id := "a"
		if i%3 != 0 || (i > 10_000 && i < 14_000) {
			id = "b" // "a" idles for a while in the middle
		}
		_, err := m.vector(f)
		require.NoError(t, err)
		r := x[0] - 0.5*x[2] + 0.1*rng.NormFloat64()
		for k := range data {
			data[k] *= gamma
		}
		for k := range bExact {
			bExact[k] *= gamma
		}
		if id == "a" {
			for p := 0; p < d; p++ {
				for q := 0; q < d; q++ {
					data[p*d+q] += x[p] * x[q]
				}
				bExact[p] += r * x[p]
			}
		}
		m.update(id, x, r)
	}
	// Bring "a" up to the model clock, as its next update would.
	m.clock++
	a := m.arms[m.index["a"]]
	m.discount(a)
	a.clock = m.clock
	for k := range data {
		data[k] *= gamma
	}
	for k := range bExact {
		bExact[k] *= gamma
	}
	for p := 0; p < d; p++ {
		for q := p; q < d; q++ {
			want := data[p*d+q]
			if p == q {
				want += lambda
			}
			assert.InDelta(t, want, a.a[p*d+q], 1e-9*(1+math.Abs(want)), "A[%d,%d]", p, q)
		}
		assert.InDelta(t, bExact[p], a.b[p], 1e-9*(1+math.Abs(bExact[p])), "b[%d]", p)
	}
	assert.GreaterOrEqual(t, a.lamEff, 0.5*lambda, "regulariser decays at most by half before a re-factorisation")
	assert.Greater(t, m.refacts, int64(n/800), "re-factorisations triggered by the decay")
	shifted := make([]float64, d*d)
	for p := 0; p < d; p++ {
		for q := 0; q < d; q++ {
			shifted[p*d+q] = data[p*d+q]
			if p == q {
				shifted[p*d+q] += a.lamEff
			}
		}
	}
	assert.NoError(t, CheckInverse(shifted, a.ainv, d))
	assert.InDelta(t, 1, a.theta[0], 0.05)
	assert.InDelta(t, -0.5, a.theta[2], 0.05)
}
