package replay

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
)

// TestRidgeGroupsMatchRidge: refitting from the per-group sufficient
// statistics with every group weighted 1 gives, fold by fold, the same
// predictions as Ridge trained on the other folds' rows (arms never chosen
// in training predict the global mean); doubling every weight changes
// only the penalty's relative weight, so with weights 2 it matches a Ridge
// that saw every row twice.
func TestRidgeGroupsMatchRidge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cands := []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "never"}}
	var recs []decision.Record
	for i := 0; i < 3000; i++ {
		var r decision.Record
		r.Request.Features.Vector = []float64{rng.NormFloat64(), rng.Float64()}
		r.Decision.Candidates = cands
		r.Decision.Probs = []float64{0.4, 0.4, 0.2, 0}
		r.Decision.Chosen = rng.IntN(3)
		if r.Decision.Chosen == 2 && i > 50 {
			r.Decision.Chosen = 0 // c is rare
		}
		r.Reward = rng.Float64()
		recs = append(recs, r)
	}
	const folds = 2
	for _, times := range []int{1, 2} {
		rg := newRidgeGroups(1, folds)
		models := []*Ridge{{}, {}}
		for i := range recs {
			rec := &recs[i]
			f := fold(rec, int64(i), folds)
			rg.register(rec)
			rg.observe(rec, groupOf(7, int64(i)), f)
			for range times {
				require.NoError(t, models[1-f].Observe(rec))
			}
		}
		require.True(t, rg.ok)
		theta := make([][][]float64, folds)
		for k := range theta {
			theta[k] = make([][]float64, len(rg.arms))
			for a := range theta[k] {
				theta[k][a] = make([]float64, rg.dim)
			}
		}
		cg := make([]float64, bootGroups)
		for g := range cg {
			cg[g] = float64(times)
		}
		require.NoError(t, rg.fit(cg, theta))
		q := make([]float64, len(cands))
		for k, m := range models {
			require.NoError(t, m.Fit())
			for i := 0; i < 20; i++ {
				rec := &recs[i]
				require.NoError(t, m.Predict(rec, q))
				phi := append([]float64{1}, rec.Request.Features.Vector...)
				for j, cd := range cands {
					got := dot(theta[k][rg.arms[cd.ID]], phi)
					require.InDelta(t, q[j], got, 1e-9, "times %d fold %d arm %s", times, k, cd.ID)
				}
			}
		}
	}
}
