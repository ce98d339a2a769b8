package neural

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// blrArm is one arm's Bayesian linear regression of the reward on the
// network's representation φ = [z(x); 1] (p = rep+1 entries, the 1 carries
// the bias): prior θ ~ N(θ₀, (v²/λ)I) centred on the arm's trained head
// (zero before it has one), so
//
//	A = λI + Σ wᵢφᵢφᵢᵀ,  b = λθ₀ + Σ wᵢrᵢφᵢ,  θ = A⁻¹b,
//
// and θ·φ has posterior N(θ·φ, v²·φᵀA⁻¹φ). A and A⁻¹ are full p×p
// row-major matrices.
type blrArm struct {
	n float64 // total weight of the rewards seen
	// yy is Σwᵢrᵢ² and pq the prior's λ|θ₀|²: with θᵀb they give the
	// residual sum of squares the noise posterior needs (noiseVar).
	yy, pq float64
	a      []float64
	ainv   []float64
	b      []float64
	theta  []float64
}

// newBLR returns the prior of an arm with head prior0 (nil for zero).
func newBLR(p int, lambda float64, prior0 []float64) *blrArm {
	r := &blrArm{a: make([]float64, p*p), ainv: make([]float64, p*p), b: make([]float64, p), theta: make([]float64, p)}
	for i := 0; i < p; i++ {
		r.a[i*p+i] = lambda
		r.ainv[i*p+i] = 1 / lambda
	}
	if prior0 != nil {
		copy(r.theta, prior0)
		for i, v := range prior0 {
			r.b[i] = lambda * v
			r.pq += lambda * v * v
		}
	}
	return r
}

// predict returns θ·φ and φᵀA⁻¹φ, reading only φ's non-zero entries nz
// (ReLU leaves many zeros) and A⁻¹'s upper triangle.
func (r *blrArm) predict(phi []float64, nz []int) (mean, variance float64) {
	p := len(phi)
	for ii, i := range nz {
		pi := phi[i]
		mean += r.theta[i] * pi
		row := r.ainv[i*p : (i+1)*p]
		s := 0.0
		for _, j := range nz[ii+1:] {
			s += row[j] * phi[j]
		}
		variance += pi * (pi*row[i] + 2*s)
	}
	return mean, math.Max(variance, 0)
}

// update adds reward y with weight w at φ by a rank-one Sherman–Morrison
// update of A⁻¹ (O(p²)) and the matching correction of θ:
//
//	u = A⁻¹φ, A⁻¹ ← A⁻¹ − w·uuᵀ/(1 + w·φᵀu), θ ← θ + w·u(y − θ·φ)/(1 + w·φᵀu).
//
// u is scratch of length p. Rounding cannot accumulate for long: every
// training round rebuilds A⁻¹ from A by Cholesky.
func (r *blrArm) update(phi, u []float64, y, w float64) {
	p := len(phi)
	var pu, pred float64
	for i := 0; i < p; i++ {
		row := r.ainv[i*p : (i+1)*p]
		s := 0.0
		for j, pj := range phi {
			s += row[j] * pj
		}
		u[i] = s
		pu += phi[i] * s
		pred += phi[i] * r.theta[i]
	}
	den := 1 + w*pu
	g := w / den
	for i := 0; i < p; i++ {
		row := r.ainv[i*p : (i+1)*p]
		ui := g * u[i]
		for j := range row {
			row[j] -= ui * u[j]
		}
		r.theta[i] += g * u[i] * (y - pred)
		r.b[i] += w * y * phi[i]
		for j := i; j < p; j++ {
			v := w * phi[i] * phi[j]
			r.a[i*p+j] += v
			if j != i {
				r.a[j*p+i] += v
			}
		}
	}
	r.n += w
	r.yy += w * y * y
}

// noiseShape and noiseScale are the normal-inverse-gamma posterior of the
// arm's noise variance σ² (Riquelme et al.'s NeuralLinear) from the prior
// IG(a0, b0):
//
//	aₙ = a0 + n/2,  bₙ = b0 + ½(Σwr² + λ|θ₀|² − θᵀb),
//
// the bracket being the weighted residual sum of squares plus the prior's
// penalty at the posterior mean (θᵀb = θᵀAθ), never negative but for
// rounding.
func (r *blrArm) noise(a0, b0 float64) (shape, scale float64) {
	var tb float64
	for i, t := range r.theta {
		tb += t * r.b[i]
	}
	return a0 + r.n/2, b0 + 0.5*math.Max(r.yy+r.pq-tb, 0)
}

// refactor recomputes A⁻¹ and θ = A⁻¹b from A and b by a Cholesky
// factorisation (gonum).
func (r *blrArm) refactor() error {
	p := len(r.b)
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(p, append([]float64(nil), r.a...))) {
		return errors.New("A is not positive definite")
	}
	inv := mat.NewSymDense(p, nil)
	if err := ch.InverseTo(inv); err != nil {
		var c mat.Condition
		if !errors.As(err, &c) || math.IsInf(float64(c), 0) {
			return fmt.Errorf("invert A: %w", err)
		}
	}
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			r.ainv[i*p+j] = inv.At(i, j)
		}
	}
	for i := 0; i < p; i++ {
		s := 0.0
		for j := 0; j < p; j++ {
			s += r.ainv[i*p+j] * r.b[j]
		}
		r.theta[i] = s
	}
	return nil
}
