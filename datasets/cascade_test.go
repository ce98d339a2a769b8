package datasets

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddCascades(t *testing.T) {
	tb, err := LoadRouterBench("testdata/routerbench_cascade.csv")
	require.NoError(t, err)
	require.True(t, tb.Answers, "every model has a response column")
	c := Cascade{Agree: []string{"a", "b"}, Escalate: "c"}
	require.NoError(t, tb.AddCascades([]Cascade{c}))
	assert.Equal(t, []string{"a", "b", "c", c.Name()}, tb.Models)
	// score, cost of the cascade on each row, by hand:
	want := []struct{ score, cost float64 }{
		{1, 0.001 + 0.002},        // r.1: "B" and "B\n" agree: a's answer
		{1, 0.001 + 0.002 + 0.01}, // r.2: A vs C): escalate to c
		{1, 0.001 + 0.002 + 0.01}, // r.3: blank answers never agree
		{0.5, 0.003 + 0.001},      // r.4: the same code up to white space agrees
	}
	require.Len(t, tb.Rows, len(want))
	for i, w := range want {
		r := tb.Rows[i]
		require.Len(t, r.Scores, 4)
		assert.Equal(t, w.score, r.Scores[3], "row %s score", r.ID)
		assert.InDelta(t, w.cost, r.Costs[3], 1e-15, "row %s cost", r.ID)
	}
	fixed := fixedMeans(tb)
	assert.True(t, fixed[3].Cascade)
	strong, cheap := Strongest(fixed)
	assert.Equal(t, 2, strong, "the cascade (mean 0.875) is never the strongest model: c (0.75) is")
	assert.Equal(t, 0, cheap)

	assert.ErrorContains(t, tb.AddCascades([]Cascade{c}), "already a model")
	assert.ErrorContains(t, tb.AddCascades([]Cascade{{Agree: []string{"a", "x"}, Escalate: "c"}}), `model "x" is not one of`)
	assert.ErrorContains(t, tb.AddCascades([]Cascade{{Agree: []string{"a", c.Name()}, Escalate: "c"}}), "is itself a cascade")
	d := Cascade{Agree: []string{"b", "a"}, Escalate: "c"}
	assert.ErrorContains(t, tb.AddCascades([]Cascade{d, d}), "already a model", "the same cascade twice in one call")
	assert.Len(t, tb.Models, 4, "a failed AddCascades changes nothing")

	noResp, err := LoadRouterBench("testdata/routerbench_b.csv")
	require.NoError(t, err)
	assert.ErrorContains(t, noResp.AddCascades([]Cascade{{Agree: []string{"m1", "m2"}, Escalate: "m1"}}), "no model responses")
}

func TestAddCascadesKeepsSplitPartsApart(t *testing.T) {
	tb, err := LoadRouterBench("testdata/routerbench_cascade.csv")
	require.NoError(t, err)
	train, test, err := tb.Split(0.5, 1)
	require.NoError(t, err)
	c := Cascade{Agree: []string{"a", "b"}, Escalate: "c"}
	require.NoError(t, train.AddCascades([]Cascade{c}))
	assert.Len(t, tb.Rows[0].Scores, 3, "the parent's rows keep their models")
	require.NoError(t, test.AddCascades([]Cascade{c}))
	assert.NoError(t, SameModels(train, test))
	assert.Equal(t, []Cascade{c}, train.Cascades)
	assert.Empty(t, tb.Cascades)
}

func TestAutoCascade(t *testing.T) {
	tb := &Table{Name: "t", Models: []string{"strong", "cheap1", "dear", "cheap2", "cheap3"}}
	// mean score, cost per model
	q := []float64{0.9, 0.6, 0.8, 0.7, 0.5}
	c := []float64{1, 0.05, 0.5, 0.1, 0.01}
	tb.Rows = []Row{{Scores: q, Costs: c}}
	got, err := AutoCascade(tb)
	require.NoError(t, err)
	assert.Equal(t, Cascade{Agree: []string{"cheap2", "cheap1"}, Escalate: "strong"}, got)

	tb.Rows[0].Costs = []float64{1, 0.05, 0.5, 0.2, 0.5}
	_, err = AutoCascade(tb)
	assert.ErrorContains(t, err, "1 models cost at most a tenth")
}

func TestUnwrapPyList(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`['D']`, "D"},
		{`['D\n']`, "D\n"},
		{`["Here's a \"quote\" and \\ and \x41\u00e9"]`, "Here's a \"quote\" and \\ and Aé"},
		{`['a', 'b']`, "a"},
		{`[]`, "[]"},
		{`not a list`, "not a list"},
		{`['unterminated]`, "['unterminated]"},
		{`['bad \x4']`, `['bad \x4']`},
		{`['keep \d']`, `keep \d`},
	} {
		assert.Equal(t, c.want, unwrapPyList(c.in), "unwrapPyList(%s)", c.in)
	}
}

func FuzzUnwrapPyList(f *testing.F) {
	for _, s := range []string{`['D']`, `["x\"y"]`, `['\u00e9\x41']`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = unwrapPyList(s) // must not panic
	})
}

// TestCascadeOnRouterBench checks the cascade column on the real table
// against figures computed independently, by a Python script over the
// same CSVs (ast.literal_eval for the response cells, its own regular
// expression for the choice letter): the per-task mean score and cost of
// Yi-34B + Mixtral agreeing, else gpt-4, over the complete rows.
func TestCascadeOnRouterBench(t *testing.T) {
	tb, err := LoadRouterBench(sharedData(t, "routerbench"))
	require.NoError(t, err)
	require.True(t, tb.Answers)
	c := Cascade{Agree: []string{"zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat"}, Escalate: "gpt-4-1106-preview"}
	require.NoError(t, tb.AddCascades([]Cascade{c}))
	want := map[string]struct {
		n             int
		quality, cost float64
	}{
		"arc-challenge": {1019, 0.934249, 0.00140386},
		"mbpp":          {299, 0.685619, 0.00977464},
		"winogrande":    {887, 0.817362, 0.00156237},
	}
	k := len(tb.Models) - 1
	for task, w := range want {
		var n int
		var q, cost float64
		for _, r := range tb.Rows {
			if r.Task == task {
				n++
				q += r.Scores[k]
				cost += r.Costs[k]
			}
		}
		assert.Equal(t, w.n, n, "%s rows", task)
		assert.InDelta(t, w.quality, q/float64(n), 1e-6, "%s mean score", task)
		assert.InDelta(t, w.cost, cost/float64(n), 1e-8, "%s mean cost", task)
	}
}

// TestCascadeBudgetRouter checks the cascade report's headline on seeds
// 1–5 (a fraction of a second: task-mean needs no text features): with the
// auto cascade (chosen on each training part) among the choices, routing
// by task alone under a limit calibrated on the training part's
// validation rows to spend at most 25% of gpt-4's cost there reaches at
// least 95% of gpt-4's test score and at most 25% of its test cost on the
// mean over seeds; single seeds may overshoot the cost a little (report:
// 23.3–25.3%), none by more than a point, and none falls below 94.5% of
// the score.
func TestCascadeBudgetRouter(t *testing.T) {
	tb, err := LoadRouterBench(sharedData(t, "routerbench"))
	require.NoError(t, err)
	var meanQ, meanC float64
	for seed := uint64(1); seed <= 5; seed++ {
		train, test, err := tb.Split(0.7, seed)
		require.NoError(t, err)
		c, err := AutoCascade(train)
		require.NoError(t, err)
		require.NoError(t, train.AddCascades([]Cascade{c}))
		require.NoError(t, test.AddCascades([]Cascade{c}))
		res, err := HeldOut(context.Background(), train, test, HeldOutOpts{Learners: []string{"task-mean"}, Seed: seed, BudgetTarget: 0.25})
		require.NoError(t, err)
		strong, _ := Strongest(res.Fixed)
		require.Equal(t, "gpt-4-1106-preview", res.Models[strong], "the reference is a model, not the cascade")
		lc := res.Curves[0]
		b := lc.Budget
		q, cost := b.Quality/res.Fixed[strong].Quality, b.Cost/res.Fixed[strong].Cost
		t.Logf("seed %d %s: %.4f of gpt-4's score at %.4f of its cost (limit %.4f, validation spend %.4f)", seed, c.Name(), q, cost,
			b.LimitUSD/res.Fixed[strong].Cost, lc.BudgetValidationCost)
		assert.LessOrEqual(t, lc.BudgetValidationCost, 0.25, "seed %d: calibrated within the target on validation", seed)
		assert.LessOrEqual(t, cost, 0.26, "seed %d: cost share", seed)
		assert.GreaterOrEqual(t, q, 0.945, "seed %d: quality share", seed)
		meanQ += q / 5
		meanC += cost / 5
	}
	assert.GreaterOrEqual(t, meanQ, 0.95, "mean quality share over seeds")
	assert.LessOrEqual(t, meanC, 0.25, "mean cost share over seeds")
}
