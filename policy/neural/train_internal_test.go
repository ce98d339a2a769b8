package neural

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/gorgonia"
)

type policyFeatures = decision.Features

var twoArms = []decision.Arm{{ID: "zero"}, {ID: "one"}}

// gorgoniaForward evaluates m's graph (the training graph, without
// gradients) on the rows of xs and returns Z and Out row-major.
func gorgoniaForward(t testing.TB, m *mlp, xs []float64, batch int) (z, out []float64) {
	t.Helper()
	gr, err := buildGraph(m, batch)
	require.NoError(t, err)
	copy(gr.xb, xs)
	vm := gorgonia.NewTapeMachine(gr.g)
	defer vm.Close()
	require.NoError(t, vm.RunAll())
	z = append(z, gr.z.Value().Data().([]float64)...)
	out = append(out, gr.out.Value().Data().([]float64)...)
	return z, out
}

func randomNet(rng *rand.Rand, in int, hidden []int, arms int) *mlp {
	m := newMLP(in, hidden, rng).withArms(arms)
	for i := range m.headW {
		m.headW[i] = rng.NormFloat64()
	}
	for i := range m.headB {
		m.headB[i] = rng.NormFloat64()
	}
	for _, l := range m.layers {
		for i := range l.b {
			l.b[i] = 0.1 * rng.NormFloat64()
		}
	}
	return m
}

func TestForwardMatchesGorgonia(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     int
		hidden []int
		arms   int
	}{
		{"32-64-32 K8", 32, []int{64, 32}, 8},
		{"5-7 K3", 5, []int{7}, 3},
		{"16-64-64-16 K2", 16, []int{64, 64, 16}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m := randomNet(rng, tc.in, tc.hidden, tc.arms)
			const batch = 17
			xs := make([]float64, batch*tc.in)
			for i := range xs {
				switch rng.IntN(3) {
				case 0: // sparse, like one-hot encodings
				case 1:
					xs[i] = 1
				default:
					xs[i] = rng.NormFloat64()
				}
			}
			gz, gout := gorgoniaForward(t, m, xs, batch)
			w := m.maxWidth()
			z, s1, s2 := make([]float64, m.rep()), make([]float64, w), make([]float64, w)
			var maxDiff float64
			for r := 0; r < batch; r++ {
				m.forward(xs[r*tc.in:(r+1)*tc.in], z, s1, s2)
				for j, v := range z {
					maxDiff = math.Max(maxDiff, math.Abs(v-gz[r*m.rep()+j]))
				}
				for a := 0; a < tc.arms; a++ {
					maxDiff = math.Max(maxDiff, math.Abs(m.head(z, a)-gout[r*tc.arms+a]))
				}
			}
			assert.LessOrEqual(t, maxDiff, 1e-9, "max |gonum − gorgonia| over z and heads")
		})
	}
}

// xorData is a nonlinear problem no linear model fits: the reward of arm
// 0 is x0 XOR x1 and of arm 1 its complement, on one-hot-like inputs.
func xorData(rng *rand.Rand, n int) *dataset {
	d := &dataset{dim: 4}
	for i := 0; i < n; i++ {
		a, b := rng.IntN(2), rng.IntN(2)
		x := []float64{1, float64(a), float64(b), 0}
		arm := rng.IntN(2)
		y := float64(a ^ b)
		if arm == 1 {
			y = 1 - y
		}
		d.add(x, arm, y+0.05*rng.NormFloat64(), 1)
	}
	return d
}

func TestTrainReducesLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := xorData(rng, 2000)
	m := newMLP(4, []int{16, 8}, rng).withArms(2)
	out, st, err := train(context.Background(), m, d, trainOpts{Steps: 600, Batch: 32, LR: 0.01}, rng)
	require.NoError(t, err)
	t.Logf("loss %.4f → %.4f in %d steps", st.LossBefore, st.LossAfter, st.Steps)
	assert.Equal(t, 600, st.Steps)
	// The best linear fit of XOR on these inputs has MSE 0.1875 (plus the
	// noise 0.0025); the network must get close to the noise floor.
	assert.Greater(t, st.LossBefore, 0.1)
	assert.Less(t, st.LossAfter, 0.02, "trained loss")
	assert.InDelta(t, st.LossAfter, loss(out, d), 1e-12)
	// m itself is untouched.
	assert.InDelta(t, st.LossBefore, loss(m, d), 1e-12)
}

// TestPolicyNetMatchesGorgonia: the network a policy trained and serves
// (exported from gorgonia after training rounds) evaluates in gorgonia to
// the same representation and heads as on the serving path.
func TestPolicyNetMatchesGorgonia(t *testing.T) {
	p, err := NewNeuralLinear(Opts{Dim: 4, Hidden: []int{16, 8}, Retrain: 100, Steps: 50, LR: 0.01, Seed: 3})
	require.NoError(t, err)
	d := xorData(rand.New(rand.NewPCG(5, 6)), 400)
	for i := 0; i < d.len(); i++ {
		f := &policyFeatures{Vector: d.row(i)}
		require.NoError(t, p.Update(f, twoArms, int(d.arm[i]), d.y[i]))
	}
	require.GreaterOrEqual(t, p.Stats().Rounds, 2)
	m := p.net
	require.Equal(t, 2, m.arms)
	xs := d.xs[:8*4]
	gz, gout := gorgoniaForward(t, m, xs, 8)
	z, s1, s2 := make([]float64, m.rep()), make([]float64, m.maxWidth()), make([]float64, m.maxWidth())
	for r := 0; r < 8; r++ {
		m.forward(xs[r*4:(r+1)*4], z, s1, s2)
		for j, v := range z {
			assert.InDelta(t, gz[r*m.rep()+j], v, 1e-9)
		}
		for a := 0; a < 2; a++ {
			assert.InDelta(t, gout[r*2+a], m.head(z, a), 1e-9)
		}
	}
}
