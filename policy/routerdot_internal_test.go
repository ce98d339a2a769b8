package policy

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRouterDotsMatchSparseSums: the dense four-arm kernel gives the same
// bits as summing over the non-zero slots one arm at a time (the
// definition), for any number of arms, nil arms, signed weights and
// vectors with many zeros.
func TestRouterDotsMatchSparseSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	for trial := range 300 {
		// Up to 3000 slots and 1%–100% non-zero: both the sparse path
		// (few non-zero slots) and the dense one.
		dim := 1 + rng.IntN(3000)
		x := make([]float64, dim)
		density := 1 + rng.IntN(100)
		for j := range x {
			if rng.IntN(100) < density {
				x[j] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-3))
			}
		}
		arms := make([]*RouterArm, 1+rng.IntN(13))
		for i := range arms {
			if rng.IntN(5) == 0 {
				continue
			}
			a := &RouterArm{Quality: make([]float64, dim), Cost: make([]float64, dim)}
			for j := range dim {
				a.Quality[j], a.Cost[j] = rng.NormFloat64(), rng.NormFloat64()*1e-4
			}
			arms[i] = a
		}
		qs, cs := make([]float64, len(arms)), make([]float64, len(arms))
		routerDots(x, arms, qs, cs)
		for i, a := range arms {
			if a == nil {
				if qs[i] != 0 || cs[i] != 0 {
					t.Fatalf("trial %d: nil arm %d scored", trial, i)
				}
				continue
			}
			q, c := 0.0, 0.0
			for j, v := range x {
				if v != 0 {
					q += a.Quality[j] * v
					c += a.Cost[j] * v
				}
			}
			if math.Float64bits(q) != math.Float64bits(qs[i]) || math.Float64bits(c) != math.Float64bits(cs[i]) {
				t.Fatalf("trial %d arm %d: kernel %v,%v; sparse sums %v,%v", trial, i, qs[i], cs[i], q, c)
			}
		}
	}
}
