package policy

import (
	"math"
	"math/rand/v2"
)

// GammaRand draws from Gamma(shape a, scale 1) by Marsaglia and Tsang
// (2000), without allocating: gonum's distuv.Gamma allocates a generator per
// draw, which a zero-allocation Select path cannot afford. a must be > 0.
func GammaRand(rng *rand.Rand, a float64) float64 {
	if a < 1 {
		// Gamma(a) = Gamma(a+1) · U^(1/a).
		u := rng.Float64()
		for u == 0 {
			u = rng.Float64()
		}
		return GammaRand(rng, a+1) * math.Pow(u, 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x {
			return d * v
		}
		if math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// betaRand draws from Beta(a, b), a, b > 0.
func betaRand(rng *rand.Rand, a, b float64) float64 {
	x := GammaRand(rng, a)
	y := GammaRand(rng, b)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}
