package neural_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/policy/neural"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func registry() *policy.Registry {
	reg := policy.NewBuiltinRegistry()
	for _, b := range neural.Builtins() {
		reg.MustRegister(b.Name, b.Doc, b.Factory)
	}
	return reg
}

// simRun runs spec on scenario with routelab sim's default encoder
// (sim.Scenario.EncoderSpec: intercept, task, default token buckets, four
// hour buckets; no crosses) without the tenant block.
func simRun(t testing.TB, scenario, spec string, requests int) *sim.Result {
	t.Helper()
	sc, err := sim.LoadScenario(scenario)
	require.NoError(t, err)
	s, err := policy.ParseSpec(spec)
	require.NoError(t, err)
	if _, ok := s.Params["seed"]; !ok {
		s.Params["seed"] = fmt.Sprint(sim.PolicySeed(1))
	}
	p, err := registry().New(s)
	require.NoError(t, err)
	// tasks-nonlinear has no tenants: drop the (all-zero) tenant block.
	es := sc.EncoderSpec()
	es.TenantBuckets = 0
	enc, err := policy.NewEncoder(es)
	require.NoError(t, err)
	res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 1, Requests: requests, Encoder: enc})
	require.NoError(t, err)
	return res
}

// TestSimBeatsLinUCBOnInteractions: on tasks-nonlinear the best model is a
// parity of task, prompt length and time of day; with the additive encoder
// LinUCB cannot express it, while neural-linear's non-linear features can.
// This test does NOT show that gorgonia training earns the win: the same
// network untrained (random ReLU features under the Bayesian heads) scores
// as well here (experiments/reports/neural-ablation). What training does
// is tested by TestTrainingIsWhatLearnsParity and TestTrainReducesLoss,
// which fail for an untrained network.
func TestSimBeatsLinUCBOnInteractions(t *testing.T) {
	requests := 100_000
	if raceEnabled {
		requests = 10_000
	}
	specs := []string{"neural-linear", "neural-linear=explore:ucb", "neural-linear=noise:learn"}
	if raceEnabled {
		specs = specs[:1]
	}
	lin := simRun(t, "tasks-nonlinear", "linucb", requests)
	for _, spec := range specs {
		nl := simRun(t, "tasks-nonlinear", spec, requests)
		t.Logf("%d requests: linucb %.4f (%.1f%% of oracle, regret %.0f); %s %.4f (%.1f%%, regret %.0f); oracle %.4f",
			requests, lin.ExpectedMeanReward, 100*lin.ExpectedMeanReward/lin.OracleMeanReward, lin.Regret,
			spec, nl.ExpectedMeanReward, 100*nl.ExpectedMeanReward/nl.OracleMeanReward, nl.Regret, nl.OracleMeanReward)
		assert.Less(t, lin.ExpectedMeanReward, 0.9*lin.OracleMeanReward, "linucb cannot express the parity")
		if raceEnabled {
			// 10k requests: the first rounds (500, 1500, 3500, 7500) must
			// already pull clearly ahead.
			assert.Greater(t, nl.ExpectedMeanReward, lin.ExpectedMeanReward+0.03, "%s vs linucb", spec)
			continue
		}
		assert.GreaterOrEqual(t, nl.ExpectedMeanReward, 0.97*nl.OracleMeanReward, "%s vs oracle", spec)
		assert.Less(t, nl.Regret, 0.1*lin.Regret, "%s regret vs linucb", spec)
	}
}

// collect is a route.Sink keeping deep copies of the records it needs.
type collect struct{ recs []decision.Record }

func (c *collect) Log(rec *decision.Record) {
	r := *rec
	r.Request.Features.Vector = slices.Clone(rec.Request.Features.Vector)
	r.Request.Features.Tags = slices.Clone(rec.Request.Features.Tags)
	r.Decision.Candidates = slices.Clone(rec.Decision.Candidates)
	r.Decision.Probs = slices.Clone(rec.Decision.Probs)
	r.Outcome.Attempts = nil
	c.recs = append(c.recs, r)
}

// TestSimWarmStartFromLogs: a NeuralLinear fitted offline on the logs of a
// uniformly random router serves tasks-nonlinear near the oracle from its
// first request, where a fresh one still has to explore.
func TestSimWarmStartFromLogs(t *testing.T) {
	sc, err := sim.LoadScenario("tasks-nonlinear")
	require.NoError(t, err)
	enc, err := policy.NewEncoder(policy.EncoderSpec{
		Intercept: true, Tasks: sc.Tasks(), TokenBuckets: policy.DefaultTokenBuckets, HourBuckets: 4, TenantBuckets: policy.DefaultTenantBuckets,
	})
	require.NoError(t, err)
	logged := &collect{}
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: policy.NewRandom(policy.RandomOpts{Seed: 3}), Seed: 3, Requests: 8000, Encoder: enc, Sink: logged})
	require.NoError(t, err)
	require.Len(t, logged.recs, 8000)

	serve := func(p policy.Policy) *sim.Result {
		// Another day of traffic (seed 4) than the logs (seed 3).
		res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 4, Requests: 2000, Encoder: enc})
		require.NoError(t, err)
		return res
	}
	fresh := serve(newPolicy(t, "neural-linear"))
	weightings := []neural.Weighting{neural.IPS, neural.DR}
	if raceEnabled {
		weightings = weightings[:1]
	}
	for _, w := range weightings {
		p := newPolicy(t, "neural-linear").(*neural.NeuralLinear)
		st, err := offline.FitNeural(context.Background(), p, records(logged.recs), neural.FitOpts{Weighting: w, Epochs: 5})
		require.NoError(t, err)
		warm := serve(p)
		t.Logf("%s fit on %d logged rows (loss %.4f → %.4f): first 2000 requests %.4f (%.1f%% of oracle, regret %.1f) vs fresh %.4f (%.1f%%, regret %.1f)",
			w, st.Rows, st.Final.LossBefore, st.Final.LossAfter, warm.ExpectedMeanReward, 100*warm.ExpectedMeanReward/warm.OracleMeanReward, warm.Regret,
			fresh.ExpectedMeanReward, 100*fresh.ExpectedMeanReward/fresh.OracleMeanReward, fresh.Regret)
		assert.GreaterOrEqual(t, warm.ExpectedMeanReward, 0.97*warm.OracleMeanReward, "%s warm start vs oracle", w)
		assert.Less(t, warm.Regret, 0.25*fresh.Regret, "%s warm start's regret vs a fresh policy's", w)
	}
}

func newPolicy(t testing.TB, spec string) policy.Policy {
	t.Helper()
	s, err := policy.ParseSpec(spec)
	require.NoError(t, err)
	s.Params["seed"] = fmt.Sprint(sim.PolicySeed(4))
	p, err := registry().New(s)
	require.NoError(t, err)
	return p
}
