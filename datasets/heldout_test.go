package datasets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStrictLoad: the bad inputs of a held-out evaluation are errors naming
// file, line and column.
func TestStrictLoad(t *testing.T) {
	const hdr = "sample_id,prompt,eval_name,m1,m2,m1|total_cost,m2|total_cost\n"
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	tests := []struct {
		name, body string
		opts       LoadOpts
		line, col  int
		msg        string
	}{
		{"missing score", hdr + "a,p,t,1,0,0.1,0.2\nb,q,t,,1,0.1,0.2\n", LoadOpts{RejectMissing: true}, 3, 7, `score of model "m1" is empty`},
		{"unknown column", "sample_id,prompt,eval_name,difficulty,m1,m1|total_cost\na,p,t,3,1,0.1\n", LoadOpts{}, 1, 28, `unknown column "difficulty"`},
		{"other models than expected", hdr + "a,p,t,1,0,0.1,0.2\n", LoadOpts{Models: []string{"m1", "m3"}}, 1, 31, `model "m2" is not one of the expected models [m1 m3]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := write(strings.ReplaceAll(tc.name, " ", "_")+".csv", tc.body)
			_, err := LoadRouterBenchOpts(tc.opts, path)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "err = %v, want a *ParseError", err)
			assert.Equal(t, path, pe.File)
			assert.Equal(t, tc.line, pe.Line, "line of %v", err)
			assert.Equal(t, tc.col, pe.Column, "column of %v", err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	// Without RejectMissing the row is skipped and counted.
	tb, err := LoadRouterBenchOpts(LoadOpts{}, write("skip.csv", hdr+"a,p,t,1,0,0.1,0.2\nb,q,t,,1,0.1,0.2\n"))
	require.NoError(t, err)
	assert.Equal(t, 1, tb.Skipped)
	assert.Len(t, tb.Rows, 1)
}

// synthTable is a table where the best model depends on a word of the
// prompt: "hard" prompts only the expensive model solves, "easy" ones
// every model solves.
func synthTable(n int, seed uint64) *Table {
	rng := rand.New(rand.NewPCG(seed, 1))
	t := &Table{Name: "synth", Models: []string{"cheap", "mid", "dear"}}
	for i := range n {
		task := []string{"qa", "code"}[i%2]
		hard := rng.Float64() < 0.4
		word := "simple easy"
		sc := []float64{1, 1, 1}
		if hard {
			word = "tricky hard"
			sc = []float64{0, float64(rng.IntN(2)), 1}
		}
		p := fmt.Sprintf("question %d about %s things: %s", i, task, word)
		t.Rows = append(t.Rows, Row{ID: fmt.Sprint(i), Task: task, Prompt: p, PromptTokens: len(p) / 4,
			Scores: sc, Costs: []float64{0.0001, 0.001, 0.01}})
	}
	return t
}

func TestSplitStratified(t *testing.T) {
	tb := synthTable(101, 1)
	tr, te, err := tb.Split(0.7, 3)
	require.NoError(t, err)
	assert.Equal(t, len(tb.Rows), len(tr.Rows)+len(te.Rows))
	count := func(x *Table, task string) (n int) {
		for _, r := range x.Rows {
			if r.Task == task {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 36, count(tr, "qa"), "round(0.7·51)")
	assert.Equal(t, 35, count(tr, "code"), "round(0.7·50)")
	seen := map[string]bool{}
	for _, r := range tr.Rows {
		seen[r.ID] = true
	}
	for _, r := range te.Rows {
		assert.False(t, seen[r.ID], "row %s in both parts", r.ID)
	}
	tr2, _, err := tb.Split(0.7, 3)
	require.NoError(t, err)
	assert.Equal(t, tr.Rows, tr2.Rows, "same seed, same split")
	tr3, _, err := tb.Split(0.7, 4)
	require.NoError(t, err)
	assert.NotEqual(t, tr.Rows, tr3.Rows, "another seed, another split")
	_, _, err = tb.Split(1, 1)
	assert.ErrorContains(t, err, "split 1")
}

// TestHeldOutLearnsText: on a table where only a prompt word tells which
// prompts need the expensive model, the text-feature learners reach its
// quality at a fraction of its cost, and routing by task alone cannot.
func TestHeldOutLearnsText(t *testing.T) {
	tb := synthTable(400, 2)
	tr, te, err := tb.Split(0.7, 1)
	require.NoError(t, err)
	res, err := HeldOut(context.Background(), tr, te, HeldOutOpts{
		Text:     policy.TextSpec{Buckets: 256, WordNgrams: 1, Markers: true},
		Learners: []string{"task-mean", "ridge", "logistic", "knn"},
		Seed:     1,
	})
	require.NoError(t, err)
	strong, cheap := Strongest(res.Fixed)
	require.Equal(t, "dear", res.Models[strong])
	require.Equal(t, "cheap", res.Models[cheap])
	for _, c := range res.Curves {
		m := Measure(c.Points, res.Fixed, 1)
		t.Logf("%s %s: AIQ %.3f APGR %.3f at-budget %.3f CPT %v", c.Learner, c.Hyper, m.AIQ, m.APGR, m.AtBudget, m.CPT)
		require.Len(t, c.Choices, len(res.Lambdas))
		if c.Learner == "task-mean" {
			assert.Less(t, m.AtBudget, 0.9, "task-mean cannot tell hard prompts at a quarter of the cost")
			continue
		}
		// Hard prompts are 40%: sending exactly those to "dear" costs about
		// 40% of always-dear and reaches its quality.
		assert.GreaterOrEqual(t, m.CPT[3], 0.35, "%s: CPT95 %v", c.Learner, m.CPT[3])
		assert.Less(t, m.CPT[3], 0.5, "%s: CPT95 %v", c.Learner, m.CPT[3])
		assert.Greater(t, m.APGR, 0.8, c.Learner)
	}
	// The fixed models' own hull has no gain at a fixed model's cost.
	hull := Measure(res.Fixed, res.Fixed, 1)
	assert.InDelta(t, 0, hull.AtRef, 1e-12)

	// Test rows of other models are refused.
	other := *te
	other.Models = []string{"cheap", "mid", "other"}
	_, err = HeldOut(context.Background(), tr, &other, HeldOutOpts{})
	assert.ErrorContains(t, err, "differ from the training data's")
}

func TestFrontierAndMeasure(t *testing.T) {
	pts := []Point{{Cost: 1, Quality: 0.5}, {Cost: 2, Quality: 0.55}, {Cost: 3, Quality: 0.9}, {Cost: 4, Quality: 0.8}, {Cost: 5, Quality: 1}}
	h := Frontier(pts)
	// (2, .55) lies below the chord (1,.5)→(3,.9); (4, .8) is dominated.
	assert.Equal(t, []Point{{Cost: 1, Quality: 0.5}, {Cost: 3, Quality: 0.9}, {Cost: 5, Quality: 1}}, h)
	assert.InDelta(t, 0.7, At(h, 2), 1e-12)
	assert.True(t, math.IsNaN(At(h, 0.5)))
	assert.Equal(t, 1.0, At(h, 9))

	fixed := []Point{{Cost: 1, Quality: 0.5}, {Cost: 5, Quality: 1}}
	m := Measure(pts, fixed, 0)
	// PGR along the hull from cost 1 to 5: 0→0.8 linearly on [1,3], then
	// 0.8→1 on [3,5]: mean (0.4 + 0.9)/2.
	assert.InDelta(t, 0.65, m.APGR, 1e-3)
	assert.InDelta(t, 0.825, m.AIQ, 1e-3)
	// 50% of the strongest's quality (0.5): cost 1 of 5; 80%: cost 3; 95%: 5.
	assert.InDeltaSlice(t, []float64{0.2, 0.6, 0.6, 1}, m.CPT, 1e-12)
	// ≤ 25% of the strongest's cost (1.25): only (1, .5).
	assert.InDelta(t, 0.5, m.AtBudget, 1e-12)
	assert.InDelta(t, 0, m.AtRef, 1e-12)
}

func TestStrongShare(t *testing.T) {
	fixed := []Point{{Cost: 1, Quality: 0.4}, {Cost: 10, Quality: 0.8}}
	c := &LearnerCurve{
		Points:  []Point{{Cost: 10, Quality: 0.8}, {Cost: 4, Quality: 0.65}, {Cost: 2, Quality: 0.55}, {Cost: 1, Quality: 0.4}},
		Choices: [][]int{{1, 1, 1, 1}, {1, 1, 0, 0}, {1, 0, 0, 0}, {0, 0, 0, 0}},
	}
	// PGRs 1, 0.625, 0.375, 0: the cheapest point reaching 0.5 is the
	// second, which sends half the prompts to the strong model.
	assert.InDelta(t, 0.5, StrongShare(c, fixed, 0.5), 1e-12)
	assert.InDelta(t, 1, StrongShare(c, fixed, 0.9), 1e-12)
	assert.True(t, math.IsNaN(StrongShare(c, []Point{{Cost: 1, Quality: 0.8}, {Cost: 2, Quality: 0.8}}, 0.5)))
}

func TestEvaluateLearningCurve(t *testing.T) {
	tb := synthTable(25, 3)
	p, err := policy.NewBuiltinRegistry().NewFromString("thompson=seed:1")
	require.NoError(t, err)
	res, err := Evaluate(context.Background(), tb, p, Opts{Seed: 1, Passes: 2, Shuffle: true, CurveEvery: 10})
	require.NoError(t, err)
	// 50 decisions: points after 10, 20, 30, 40 and 50.
	require.Len(t, res.Curve, 5)
	last := res.Curve[4]
	assert.Equal(t, 50, last.Decisions)
	assert.InDelta(t, res.MeanReward, last.MeanReward, 1e-12)
	assert.InDelta(t, res.MeanScore, last.MeanScore, 1e-12)
	assert.InDelta(t, res.CostTotal/50, last.MeanCost, 1e-12)
}
