package neural

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// layer is one dense layer y = act(x·W + b) with W stored row-major as
// in×out, the layout gorgonia's x·W uses, so weights move between the
// trainer and the serving path without transposition.
type layer struct {
	in, out int
	w       []float64 // in*out, row i holds input i's weights to every output
	b       []float64 // out
}

// mlp is the reward network: a ReLU trunk x → z (the representation the
// per-arm Bayesian regressions read) and one linear head per arm,
// ŷₐ = z·headW[:,a] + headB[a]. A trained mlp is immutable: training builds a
// new one and the policy swaps it in, so Select may read it under the
// policy's lock while the trainer works on its own copy.
type mlp struct {
	in     int
	layers []layer // the trunk; layers[len-1].out is the representation size
	// heads: rep×arms row-major and arms biases; arms may be 0 before the
	// first training round.
	arms  int
	headW []float64
	headB []float64
}

// newMLP draws a trunk with He-uniform weights (ReLU) from rng and zero
// biases; heads start empty. gorgonia's own initialisers seed themselves
// from the wall clock, so weights are drawn here, from the policy's stream.
func newMLP(in int, hidden []int, rng *rand.Rand) *mlp {
	m := &mlp{in: in}
	prev := in
	for _, h := range hidden {
		l := layer{in: prev, out: h, w: make([]float64, prev*h), b: make([]float64, h)}
		lim := math.Sqrt(6 / float64(prev))
		for i := range l.w {
			l.w[i] = (2*rng.Float64() - 1) * lim
		}
		m.layers = append(m.layers, l)
		prev = h
	}
	return m
}

// rep is the size of the representation z.
func (m *mlp) rep() int { return m.layers[len(m.layers)-1].out }

// withArms returns a copy of m whose heads cover k arms: existing heads are
// kept, new ones start at zero (the trunk's gradient flows through them from
// the first step, and a zero head predicts the prior mean 0).
func (m *mlp) withArms(k int) *mlp {
	c := m.clone()
	if k <= m.arms {
		return c
	}
	r := m.rep()
	w := make([]float64, r*k)
	for i := 0; i < r; i++ {
		copy(w[i*k:i*k+m.arms], m.headW[i*m.arms:(i+1)*m.arms])
	}
	b := make([]float64, k)
	copy(b, m.headB)
	c.arms, c.headW, c.headB = k, w, b
	return c
}

func (m *mlp) clone() *mlp {
	c := &mlp{in: m.in, arms: m.arms, headW: append([]float64(nil), m.headW...), headB: append([]float64(nil), m.headB...)}
	for _, l := range m.layers {
		c.layers = append(c.layers, layer{in: l.in, out: l.out, w: append([]float64(nil), l.w...), b: append([]float64(nil), l.b...)})
	}
	return c
}

// maxWidth is the widest layer, the size of the scratch buffers forward needs.
func (m *mlp) maxWidth() int {
	w := m.in
	for _, l := range m.layers {
		w = max(w, l.out)
	}
	return w
}

// forward writes the representation z(x) into z (len rep()) using the two
// scratch buffers s1, s2 (len maxWidth()), without allocating. The first
// layer reads only x's non-zero entries: one-hot encodings make it a sum of
// a few weight rows. It is the serving path: plain loops over the exported
// weights, equal to the gorgonia graph's forward pass up to rounding.
func (m *mlp) forward(x, z, s1, s2 []float64) {
	cur := x
	for li := range m.layers {
		l := &m.layers[li]
		dst := s1
		if li == len(m.layers)-1 {
			dst = z
		}
		dst = dst[:l.out]
		copy(dst, l.b)
		for i, xi := range cur[:l.in] {
			if xi == 0 {
				continue
			}
			row := l.w[i*l.out : (i+1)*l.out]
			for j, wij := range row {
				dst[j] += xi * wij
			}
		}
		for j, v := range dst {
			if v < 0 {
				dst[j] = 0
			}
		}
		cur = dst
		s1, s2 = s2, s1
	}
}

// head returns arm a's network prediction from the representation z.
func (m *mlp) head(z []float64, a int) float64 {
	if a >= m.arms {
		return 0
	}
	v := m.headB[a]
	for i, zi := range z {
		v += zi * m.headW[i*m.arms+a]
	}
	return v
}

// validate checks a network's shapes and values (for restored snapshots).
func (m *mlp) validate() error {
	if m.in <= 0 || len(m.layers) == 0 {
		return fmt.Errorf("network has input %d and %d layers", m.in, len(m.layers))
	}
	prev := m.in
	for i, l := range m.layers {
		if l.in != prev || l.out <= 0 || len(l.w) != l.in*l.out || len(l.b) != l.out {
			return fmt.Errorf("layer %d: shape %d×%d with %d weights and %d biases does not chain from %d inputs", i, l.in, l.out, len(l.w), len(l.b), prev)
		}
		if !finite(l.w...) || !finite(l.b...) {
			return fmt.Errorf("layer %d: non-finite weights", i)
		}
		prev = l.out
	}
	if m.arms < 0 || len(m.headW) != prev*m.arms || len(m.headB) != m.arms {
		return fmt.Errorf("heads: %d arms with %d weights and %d biases for representation %d", m.arms, len(m.headW), len(m.headB), prev)
	}
	if !finite(m.headW...) || !finite(m.headB...) {
		return fmt.Errorf("heads: non-finite weights")
	}
	return nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// headPrior returns arm a's head as a prior mean for its regression on
// φ = [z; 1], or nil when the network has no head for a yet.
func (m *mlp) headPrior(a int) []float64 {
	if a >= m.arms {
		return nil
	}
	r := m.rep()
	out := make([]float64, r+1)
	for i := 0; i < r; i++ {
		out[i] = m.headW[i*m.arms+a]
	}
	out[r] = m.headB[a]
	return out
}
