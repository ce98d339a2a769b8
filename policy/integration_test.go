package policy_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run the policies in the simulator (package sim) on its
// built-in scenarios, one 100k-request run per policy and scenario, on a
// fixed seed. Runs are independent, so they go two at a time. Under the
// race detector, which slows the simulator about 25-fold, the comparisons
// keep only the strongest baselines so the package stays within a minute.

const simRequests = 100_000

func simRun(t *testing.T, scenario, spec string, contextual bool) *sim.Result {
	t.Helper()
	var crosses [][]string
	if contextual {
		crosses = [][]string{}
	}
	return simRunEnc(t, scenario, spec, crosses)
}

// simRunEnc runs spec on scenario; crosses nil means no encoder, otherwise
// the encoder has intercept, task, tenant and token blocks plus crosses.
func simRunEnc(t *testing.T, scenario, spec string, crosses [][]string) *sim.Result {
	t.Helper()
	sc, err := sim.LoadScenario(scenario)
	require.NoError(t, err)
	s, err := policy.ParseSpec(spec)
	require.NoError(t, err)
	if _, ok := s.Params["seed"]; !ok {
		s.Params["seed"] = fmt.Sprint(sim.PolicySeed(1))
	}
	p, err := policy.NewBuiltinRegistry().New(s)
	require.NoError(t, err)
	o := sim.Opts{Scenario: sc, Policy: p, Seed: 1, Requests: simRequests}
	if crosses != nil {
		eo := policy.EncoderSpec{
			Intercept:     true,
			Tasks:         sc.Tasks(),
			TenantBuckets: policy.DefaultTenantBuckets,
			TokenBuckets:  policy.DefaultTokenBuckets,
		}
		if len(crosses) > 0 {
			// tasks-nonlinear's cells: prompt > 2048 tokens, night 18-06 UTC.
			eo.TokenBuckets, eo.HourBuckets, eo.Crosses = []int{2048}, 4, crosses
		}
		enc, err := policy.NewEncoder(eo)
		require.NoError(t, err)
		o.Encoder = enc
	}
	res, err := sim.Run(context.Background(), o)
	require.NoError(t, err)
	return res
}

// runAll runs the specs concurrently (two at a time) and returns results
// by spec.
func runAll(t *testing.T, scenario string, specs []string, contextual func(string) bool) map[string]*sim.Result {
	out := make(map[string]*sim.Result, len(specs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := simRun(t, scenario, spec, contextual(spec))
			mu.Lock()
			out[spec] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, spec := range specs {
		r := out[spec]
		require.NotNil(t, r, spec)
		t.Logf("%-16s %-12s mean %.4f oracle %.4f (%.1f%%) regret %.0f", scenario, spec, r.MeanReward, r.OracleMeanReward, 100*r.ExpectedMeanReward/r.OracleMeanReward, r.Regret)
	}
	return out
}

func TestSimLinearPoliciesLearnTasks(t *testing.T) {
	contextual := []string{"linucb", "lin-thompson"}
	flat := []string{"random", "weighted", "epsilon-greedy", "ucb1", "thompson", "softmax", "sw-ucb", "d-ucb", "d-thompson"}
	if raceEnabled {
		// The three strongest context-free policies in full runs.
		flat = []string{"weighted", "epsilon-greedy", "thompson"}
	}
	isCtx := func(s string) bool { return s == "linucb" || s == "lin-thompson" }
	res := runAll(t, "tasks", append(append([]string{}, contextual...), flat...), isCtx)
	for _, c := range contextual {
		r := res[c]
		assert.GreaterOrEqual(t, r.ExpectedMeanReward, 0.95*r.OracleMeanReward, "%s: expected reward vs oracle within %d requests", c, simRequests)
		for _, f := range flat {
			// A clear margin: the specialists' edge over the generalist is
			// what context buys; half of it must show.
			assert.Greater(t, r.ExpectedMeanReward, res[f].ExpectedMeanReward+0.03, "%s must beat %s clearly", c, f)
		}
	}
}

func TestSimNonStationaryPoliciesTrackDrift(t *testing.T) {
	// Each adaptive policy against its stationary version, both with
	// default parameters and (for UCB) with the same exploration scale.
	pairs := [][2]string{{"sw-ucb", "ucb1"}, {"d-ucb", "ucb1"}, {"sw-ucb", "ucb1=c:0.5"}, {"d-ucb", "ucb1=c:0.5"}, {"d-thompson", "thompson"}}
	if raceEnabled {
		pairs = [][2]string{{"sw-ucb", "ucb1"}, {"d-thompson", "thompson"}}
	}
	var specs []string
	for _, pr := range pairs {
		for _, s := range pr {
			if !slices.Contains(specs, s) {
				specs = append(specs, s)
			}
		}
	}
	res := runAll(t, "drift", specs, func(string) bool { return false })
	for _, pr := range pairs {
		assert.Greater(t, res[pr[0]].ExpectedMeanReward, res[pr[1]].ExpectedMeanReward, "%s must beat %s on drift", pr[0], pr[1])
		assert.Less(t, res[pr[0]].Regret, 0.7*res[pr[1]].Regret, "%s regret vs %s", pr[0], pr[1])
	}
}

// TestSimCrossedFeaturesLearnInteractions: on tasks-nonlinear the best model
// is a parity of task, prompt length and time of day, which additive
// features cannot express; crossing those blocks in the encoder lets the
// same linear policy learn it.
func TestSimCrossedFeaturesLearnInteractions(t *testing.T) {
	additive := simRunEnc(t, "tasks-nonlinear", "linucb", [][]string{})
	crossed := simRunEnc(t, "tasks-nonlinear", "linucb", [][]string{{"task", "tokens", "hour"}})
	t.Logf("linucb additive %.4f, crossed %.4f, oracle %.4f", additive.ExpectedMeanReward, crossed.ExpectedMeanReward, crossed.OracleMeanReward)
	assert.Less(t, additive.ExpectedMeanReward, 0.9*additive.OracleMeanReward, "additive features cannot express the parity")
	assert.GreaterOrEqual(t, crossed.ExpectedMeanReward, 0.95*crossed.OracleMeanReward, "crossed features can")
}

// TestSimDiscountedLinearPoliciesTrackContextualDrift: on drift-contextual
// the task → best model mapping changes mid-run; forgetting past data
// (gamma < 1) lets the linear policies re-learn it.
func TestSimDiscountedLinearPoliciesTrackContextualDrift(t *testing.T) {
	pairs := [][2]string{{"linucb=gamma:0.9998", "linucb"}, {"lin-thompson=gamma:0.9998", "lin-thompson"}}
	if raceEnabled {
		pairs = pairs[1:]
	}
	var specs []string
	for _, pr := range pairs {
		specs = append(specs, pr[0], pr[1])
	}
	res := runAll(t, "drift-contextual", specs, func(string) bool { return true })
	for _, pr := range pairs {
		assert.Greater(t, res[pr[0]].ExpectedMeanReward, res[pr[1]].ExpectedMeanReward, "%s must beat %s", pr[0], pr[1])
		assert.Less(t, res[pr[0]].Regret, 0.7*res[pr[1]].Regret, "%s regret vs %s", pr[0], pr[1])
	}
}
