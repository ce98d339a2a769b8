package datasets

import (
	"context"
	"os"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeldOutRouterBenchLong checks the README's held-out claims on the
// real RouterBench tables, one seed (about a CPU minute, so behind
// ROUTELAB_HELDOUT_LONG=1 and `make test-long`): with text features a
// ridge router beats always-Yi-34B, and routing by task alone, at no more
// than Yi's cost, and LinUCB learnt
// from bandit feedback only beats every fixed model at λ = 20.
func TestHeldOutRouterBenchLong(t *testing.T) {
	if os.Getenv("ROUTELAB_HELDOUT_LONG") == "" {
		t.Skip("set ROUTELAB_HELDOUT_LONG=1 (make test-long)")
	}
	tb, err := LoadRouterBench(sharedData(t, "routerbench"))
	require.NoError(t, err)
	train, test, err := tb.Split(0.7, 1)
	require.NoError(t, err)
	ts := policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}
	res, err := HeldOut(context.Background(), train, test, HeldOutOpts{Text: ts, Learners: []string{"task-mean", "ridge"}, Seed: 1})
	require.NoError(t, err)
	yi := -1
	for m, name := range res.Models {
		if name == "zero-one-ai/Yi-34B-Chat" {
			yi = m
		}
	}
	require.GreaterOrEqual(t, yi, 0)
	simple, ridge := Measure(res.Curves[0].Points, res.Fixed, yi), Measure(res.Curves[1].Points, res.Fixed, yi)
	t.Logf("task-mean %+v\nridge %+v", simple, ridge)
	assert.Greater(t, ridge.AtRef, 0.0, "ridge above Yi-34B at its cost")
	assert.Greater(t, ridge.AtRef, simple.AtRef, "ridge vs task-mean at Yi-34B's cost")
	// At a quarter of gpt-4's cost the text features do not separate from
	// routing by task alone (report: ridge 92.8 ± 2.2% vs task-mean
	// 91.6 ± 1.7% over 5 seeds; on seed 1 both pick the same λ point), so
	// that is reported, not asserted.
	t.Logf("at 25%% of gpt-4's cost: ridge %.4f, task-mean %.4f", ridge.AtBudget, simple.AtBudget)
	for _, c := range res.Curves {
		t.Logf("%s budget router: %+v (limit $%.6f)", c.Learner, *c.Budget, res.BudgetUSD)
	}

	bts := ts
	bts.Buckets = 32
	spec, err := train.TextEncoderSpec(bts)
	require.NoError(t, err)
	enc, err := policy.NewEncoder(spec)
	require.NoError(t, err)
	p, err := policy.NewLinUCB(policy.LinUCBOpts{Alpha: 1, LinearOpts: policy.LinearOpts{Dim: enc.Dim()}})
	require.NoError(t, err)
	rw := decision.Reward{Quality: 1, Failure: 1, CostRef: 1, LatencyRef: 1e9, UnknownQuality: 0.5, Lambda: 20}
	_, err = Evaluate(context.Background(), train, p, Opts{Seed: 1, Passes: 3, Shuffle: true, Encoder: enc, Reward: rw})
	require.NoError(t, err)
	te, err := Evaluate(context.Background(), test, p, Opts{Seed: 1, Frozen: true, Encoder: enc, Reward: rw})
	require.NoError(t, err)
	for _, f := range te.Fixed {
		assert.Greater(t, te.MeanReward, f.MeanReward, "frozen linucb vs always %s", f.Model)
	}
}

// TestHeldOutBudgetRouterLong checks the held-out report's budget-router
// claims on seeds 1–5 (behind ROUTELAB_HELDOUT_LONG=1, `make test-long`):
// the router streaming the test prompts under a limit of 25% of gpt-4's
// mean training cost per prompt, enforced by the dual price on observed
// spend, realises a mean cost within 3% above the limit on every seed
// (report: −0.2% to +1.9%), and lands within 2 points of the curve's
// hull at 25% of gpt-4's test cost (randomising between λ points: the
// report has the router within 0.5 points of it on the mean). Whether
// text features beat routing by task alone there is reported, not
// asserted: on the mean they do not (report).
func TestHeldOutBudgetRouterLong(t *testing.T) {
	if os.Getenv("ROUTELAB_HELDOUT_LONG") == "" {
		t.Skip("set ROUTELAB_HELDOUT_LONG=1 (make test-long)")
	}
	tb, err := LoadRouterBench(sharedData(t, "routerbench"))
	require.NoError(t, err)
	ts := policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}
	for seed := uint64(1); seed <= 5; seed++ {
		train, test, err := tb.Split(0.7, seed)
		require.NoError(t, err)
		res, err := HeldOut(context.Background(), train, test, HeldOutOpts{Text: ts, Learners: []string{"task-mean", "knn"}, Seed: seed})
		require.NoError(t, err)
		strong, _ := Strongest(res.Fixed)
		qs, cs := res.Fixed[strong].Quality, res.Fixed[strong].Cost
		for _, c := range res.Curves {
			require.NotNil(t, c.Budget, c.Learner)
			over := c.Budget.Cost/res.BudgetUSD - 1
			hull := Measure(c.Points, res.Fixed, 0).AtBudgetHull
			t.Logf("seed %d %s: quality %.4f of gpt-4's, cost %.4f of its cost, %+.2f%% over the limit; hull %.4f",
				seed, c.Learner, c.Budget.Quality/qs, c.Budget.Cost/cs, 100*over, hull)
			assert.LessOrEqual(t, over, 0.03, "seed %d %s: realised cost over the limit", seed, c.Learner)
			assert.InDelta(t, hull, c.Budget.Quality/qs, 0.03, "seed %d %s: budget router vs the hull at 25%%", seed, c.Learner)
		}
	}
}
