package neural

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBLRUpdateMatchesRefactor: Sherman–Morrison updates (weighted, with a
// head-centred prior, on sparse ReLU-like φ) agree with the Cholesky
// solution of the same A and b, and predict reads them correctly.
func TestBLRUpdateMatchesRefactor(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const p = 9
	prior := make([]float64, p)
	for i := range prior {
		prior[i] = rng.NormFloat64()
	}
	r := newBLR(p, 2, prior)
	assert.Equal(t, prior, r.theta, "the prior mean is the head")
	phi, u := make([]float64, p), make([]float64, p)
	for n := 0; n < 500; n++ {
		for i := range phi[:p-1] {
			phi[i] = math.Max(0, rng.NormFloat64())
		}
		phi[p-1] = 1
		r.update(phi, u, rng.Float64(), 0.5+rng.Float64())
	}
	sm := &blrArm{ainv: slices.Clone(r.ainv), theta: slices.Clone(r.theta)}
	require.NoError(t, r.refactor())
	for i := range r.ainv {
		assert.InDelta(t, r.ainv[i], sm.ainv[i], 1e-9, "A⁻¹[%d]", i)
	}
	for i := range r.theta {
		assert.InDelta(t, r.theta[i], sm.theta[i], 1e-9, "θ[%d]", i)
	}
	require.NoError(t, policy.CheckInverse(r.a, r.ainv, p))
	// predict on the non-zeros equals the dense forms θ·φ and φᵀA⁻¹φ.
	phi[2], phi[5] = 0, 0
	var nz []int
	for i, v := range phi {
		if v != 0 {
			nz = append(nz, i)
		}
	}
	mean, v := r.predict(phi, nz)
	var wantM, wantV float64
	for i := 0; i < p; i++ {
		wantM += r.theta[i] * phi[i]
		for j := 0; j < p; j++ {
			wantV += phi[i] * r.ainv[i*p+j] * phi[j]
		}
	}
	assert.InDelta(t, wantM, mean, 1e-12)
	assert.InDelta(t, wantV, v, 1e-12)
}

// TestBLRNoisePosterior: the normal-inverse-gamma posterior's mean
// bₙ/(aₙ−1) recovers the reward noise variance, whatever the prior guess.
func TestBLRNoisePosterior(t *testing.T) {
	for _, sd := range []float64{0.05, 0.3, 1} {
		rng := rand.New(rand.NewPCG(3, 4))
		const p = 6
		truth := []float64{0.5, -0.2, 0.1, 0.3, 0, 0.4}
		r := newBLR(p, 1, []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1})
		phi, u := make([]float64, p), make([]float64, p)
		for n := 0; n < 4000; n++ {
			y := 0.0
			for i := range phi {
				phi[i] = math.Max(0, rng.NormFloat64())
				y += truth[i] * phi[i]
			}
			r.update(phi, u, y+sd*rng.NormFloat64(), 1)
		}
		shape, scale := r.noise(2, 0.25*0.25)
		got := scale / (shape - 1)
		t.Logf("noise sd %.2f: posterior mean variance %.5f (true %.5f)", sd, got, sd*sd)
		assert.InDelta(t, sd*sd, got, 0.1*sd*sd+1e-4, "posterior mean of σ²")
		var sum float64
		for i := 0; i < 2000; i++ {
			sum += policy.GammaRand(rng, shape)
		}
		assert.InDelta(t, shape, sum/2000, 0.05*shape, "Gamma(a,1) sample mean")
	}
}
