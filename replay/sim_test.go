package replay_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// collect keeps copies of a simulation's records (internal/synthlog).
type collect = synthlog.Collector

// specialistPolicy is a fixed (non-learning) target on the tasks scenario:
// the specialist of the request's task with probability pSpec, the
// generalist with pGen, the rest spread evenly. With pSpec = 1 it is the
// deterministic oracle.
type specialistPolicy struct {
	name        string
	pSpec, pGen float64
	rng         *rand.Rand
}

var specialistOf = map[string]string{"chat": "chatty", "code": "coder", "math": "mathlete", "summarize": "summarizer"}

func (p *specialistPolicy) Name() string { return p.name }

func (p *specialistPolicy) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	spec := specialistOf[f.Task]
	rest := 0
	for _, c := range cands {
		if c.ID != spec && c.ID != "generalist" {
			rest++
		}
	}
	for i, c := range cands {
		switch c.ID {
		case spec:
			probs[i] = p.pSpec
		case "generalist":
			probs[i] = p.pGen
		default:
			probs[i] = (1 - p.pSpec - p.pGen) / float64(rest)
		}
	}
	u, chosen := p.rng.Float64(), len(cands)-1
	for i := range cands {
		if u -= probs[i]; u < 0 {
			chosen = i
			break
		}
	}
	return chosen, nil
}

func (*specialistPolicy) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

// TestSimTasksValidation is the estimator validation on the
// simulator: 100k decisions of the tasks scenario logged by ε-greedy
// (ε = 0.3, learning as it logs — its propensities are exact per row); the
// targets' true values come from running them on-policy on the same seed
// (the same requests and latent draws). DR and SNDR must be within 2%.
func TestSimTasksValidation(t *testing.T) {
	t.Parallel() // long under -race: overlap with the other statistical tests
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	const seed, n = 42, 100_000
	ctx := context.Background()
	logger, err := policy.NewEpsilonGreedy(policy.EpsilonGreedyOpts{Epsilon: 0.3, Seed: sim.PolicySeed(seed)})
	require.NoError(t, err)
	sink := &collect{}
	_, err = sim.Run(ctx, sim.Opts{Scenario: sc, Policy: logger, Seed: seed, Requests: n, Sink: sink})
	require.NoError(t, err)
	require.Len(t, sink.Recs, n)

	newTargets := func() []*specialistPolicy {
		return []*specialistPolicy{
			{name: "oracle", pSpec: 1, rng: rand.New(rand.NewPCG(7, 1))},
			{name: "mostly-specialist", pSpec: 0.7, pGen: 0.2, rng: rand.New(rand.NewPCG(7, 2))},
		}
	}
	truth := map[string]float64{}
	for _, p := range newTargets() {
		res, err := sim.Run(ctx, sim.Opts{Scenario: sc, Policy: p, Seed: seed, Requests: n})
		require.NoError(t, err)
		truth[p.name] = res.MeanReward
		t.Logf("on-policy %-18s mean reward %.4f (expected %.4f)", p.name, res.MeanReward, res.ExpectedMeanReward)
	}
	var targets []replay.Target
	for _, p := range newTargets() {
		targets = append(targets, replay.Target{Policy: p})
	}
	res, err := replay.Evaluate(ctx, replay.Records(sink.Recs), targets, replay.Opts{Bootstrap: -1, Clip: 20, Tau: 20}) // intervals: TestBootstrapCoverage; refitting 100 of them on 100k rows costs ~25 s here
	require.NoError(t, err)
	t.Logf("%-18s %-11s %8s %8s %9s %19s %7s", "policy", "estimator", "value", "truth", "rel.err", "95% CI", "ess")
	for _, r := range res {
		tr := truth[r.Policy]
		rel := (r.Value - tr) / tr
		t.Logf("%-18s %-11s %8.4f %8.4f %+8.2f%% [%8.4f,%8.4f] %7.0f", r.Policy, r.Estimator, r.Value, tr, 100*rel, r.CILow, r.CIHigh, r.ESS)
		if r.Estimator == replay.DR || r.Estimator == replay.SNDR {
			assert.Less(t, math.Abs(rel), 0.02, "%s/%s: relative error %.4f", r.Policy, r.Estimator, rel)
		}
		assert.Empty(t, filterSupport(r.Warnings), "ε-greedy covers every arm")
	}
}

func filterSupport(ws []string) []string {
	var out []string
	for _, w := range ws {
		if strings.HasPrefix(w, "missing support") {
			out = append(out, w)
		}
	}
	return out
}
