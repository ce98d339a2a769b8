package neural_test

import (
	"context"
	"fmt"
	"testing"

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
// (intercept, task, default token buckets, four hour buckets, tenant; no
// crosses).
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
	enc, err := policy.NewFeatureEncoder(policy.EncoderOpts{
		Intercept: true, Tasks: sc.Tasks(), TokenBuckets: policy.DefaultTokenBuckets, HourBuckets: 4, Tenants: sc.Tenants(),
	})
	require.NoError(t, err)
	res, err := sim.Run(context.Background(), sim.Options{Scenario: sc, Policy: p, Seed: 1, Requests: requests, Encoder: enc})
	require.NoError(t, err)
	return res
}

// TestSimBeatsLinUCBOnInteractions: on tasks-nonlinear the best model is a
// parity of task, prompt length and time of day; with the additive encoder
// LinUCB cannot express it, while the network learns the interaction from
// the same one-hot blocks.
func TestSimBeatsLinUCBOnInteractions(t *testing.T) {
	requests := 100_000
	if raceEnabled {
		requests = 10_000
	}
	specs := []string{"neural-linear", "neural-linear=explore:ucb"}
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
