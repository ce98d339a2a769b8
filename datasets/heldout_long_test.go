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
