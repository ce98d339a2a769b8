package datasets

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lowRankTable is a table whose expected scores are exactly a rank-2
// matrix factorisation of its feature vectors: score(row, m) =
// σ(v*_m · P* x_row). The scores are those probabilities (soft labels), so
// a perfect fit has zero error. It returns the table, its encoded rows and
// the true score matrix.
func lowRankTable(n, features, models int, seed uint64) (*Table, []spVec) {
	rng := rand.New(rand.NewPCG(seed, 2))
	const rank = 2
	P := make([]float64, rank*features)
	for i := range P {
		P[i] = rng.NormFloat64() * 1.5
	}
	V := make([]float64, models*rank)
	for i := range V {
		V[i] = rng.NormFloat64() * 1.5
	}
	t := &Table{Name: "lowrank"}
	for m := range models {
		t.Models = append(t.Models, string(rune('a'+m)))
	}
	X := make([]spVec, n)
	for r := range n {
		var x spVec
		// A sparse row: 3 random features of [0, features) with weights
		// in [0,1] (sorted indices, as encodeRows gives).
		seen := map[int32]bool{}
		for len(x.idx) < 3 {
			i := int32(rng.IntN(features))
			if !seen[i] {
				seen[i] = true
				x.idx = append(x.idx, i)
			}
		}
		for range x.idx {
			x.val = append(x.val, rng.Float64())
		}
		u := make([]float64, rank)
		for j, i := range x.idx {
			for c := range rank {
				u[c] += x.val[j] * P[c*features+int(i)]
			}
		}
		sc := make([]float64, models)
		for m := range models {
			z := 0.0
			for c := range rank {
				z += V[m*rank+c] * u[c]
			}
			sc[m] = sigmoid(z)
		}
		X[r] = x
		t.Rows = append(t.Rows, Row{ID: string(rune(r)), Task: "t", Scores: sc, Costs: make([]float64, models)})
	}
	return t, X
}

// mse is the mean squared error of p's predictions against t's scores.
func mse(p predictor, t *Table, X []spVec) float64 {
	k := len(t.Models)
	q := make([]float64, k)
	s := 0.0
	for r, x := range X {
		p.predict(x, t.Rows[r].Task, q)
		for m := range k {
			d := q[m] - t.Rows[r].Scores[m]
			s += d * d
		}
	}
	return s / float64(len(X)*k)
}

// TestMFRecoversLowRank: mf fitted on a rank-2 table predicts held-out
// rows of it well, far better than the per-task mean (which ignores the
// features), and about as well as it fits its training rows.
func TestMFRecoversLowRank(t *testing.T) {
	const features = 40
	tb, X := lowRankTable(1500, features, 6, 1)
	train := &Table{Name: tb.Name, Models: tb.Models, Rows: tb.Rows[:1200]}
	test := &Table{Name: tb.Name, Models: tb.Models, Rows: tb.Rows[1200:]}
	Xtr, Xte := X[:1200], X[1200:]
	m, err := fitMF(train, Xtr, features, mfOpts{Dim: 4, L2: 1e-6, Epochs: 150, Seed: 3})
	require.NoError(t, err)
	base := mse(fitTaskMean(train), test, Xte)
	got := mse(m, test, Xte)
	t.Logf("held-out MSE: task-mean %.5f, mf %.5f (train %.5f)", base, got, mse(m, train, Xtr))
	assert.Less(t, got, base/20, "mf recovers the low-rank structure")
}

// TestMFDeterministic: the same seed gives the same fit; another seed
// another one.
func TestMFDeterministic(t *testing.T) {
	tb, X := lowRankTable(200, 20, 3, 2)
	o := mfOpts{Dim: 3, L2: 1e-4, Epochs: 5, Seed: 7}
	a, err := fitMF(tb, X, 20, o)
	require.NoError(t, err)
	b, err := fitMF(tb, X, 20, o)
	require.NoError(t, err)
	assert.Equal(t, a.p, b.p)
	assert.Equal(t, a.v, b.v)
	assert.Equal(t, a.b, b.b)
	o.Seed = 8
	c, err := fitMF(tb, X, 20, o)
	require.NoError(t, err)
	assert.NotEqual(t, a.p, c.p)
}

func TestMFBadOpts(t *testing.T) {
	tb, X := lowRankTable(20, 5, 2, 3)
	for _, tc := range []struct {
		o   mfOpts
		msg string
	}{
		{mfOpts{Dim: 0, Epochs: 1}, "dim 0"},
		{mfOpts{Dim: 2, L2: -1, Epochs: 1}, "l2 -1"},
		{mfOpts{Dim: 2, L2: math.NaN(), Epochs: 1}, "l2 NaN"},
		{mfOpts{Dim: 2, Epochs: 0}, "epochs 0"},
		{mfOpts{Dim: 2, Epochs: 1, LR: 5}, "learning rate 5"},
	} {
		_, err := fitMF(tb, X, 5, tc.o)
		assert.ErrorContains(t, err, tc.msg)
	}
	_, err := fitMF(tb, X[:3], 5, mfOpts{Dim: 2, Epochs: 1})
	assert.ErrorContains(t, err, "3 feature rows for 20 table rows")
}

// TestHeldOutMF: mf runs in the held-out evaluation like every learner —
// a setting chosen on validation and named — and learns the word that
// tells hard prompts from easy ones, which routing by task cannot.
func TestHeldOutMF(t *testing.T) {
	tb := synthTable(400, 2)
	tr, te, err := tb.Split(0.7, 1)
	require.NoError(t, err)
	res, err := HeldOut(context.Background(), tr, te, HeldOutOpts{
		Text:     policy.TextSpec{Buckets: 256, WordNgrams: 1, Markers: true},
		Learners: []string{"mf"},
		Seed:     1,
	})
	require.NoError(t, err)
	require.Len(t, res.Curves, 1)
	c := res.Curves[0]
	assert.Regexp(t, `^dim=\d+,l2=[0-9e.-]+,epochs=\d+$`, c.Hyper)
	m := Measure(c.Points, res.Fixed, 1)
	t.Logf("mf %s: AIQ %.3f APGR %.3f CPT %v", c.Hyper, m.AIQ, m.APGR, m.CPT)
	assert.Greater(t, m.APGR, 0.8)
	assert.Less(t, m.CPT[3], 0.5, "95%% of the strong model's quality at under half its cost")
}
