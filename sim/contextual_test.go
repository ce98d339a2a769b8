package sim_test

import (
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encoderFor is the feature encoder routelab sim uses.
func encoderFor(t testing.TB, sc *sim.Scenario) policy.Encoder {
	enc, err := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Tasks: sc.Tasks(), TokenBuckets: policy.DefaultTokenBuckets, HourBuckets: 4, TenantBuckets: policy.DefaultTenantBuckets})
	require.NoError(t, err)
	return enc
}

// TestContextualScenarios checks what the contextual scenarios are for:
// on tasks a linear contextual policy learns the task → model map that no
// non-contextual policy can use; on tasks-nonlinear it cannot.
func TestContextualScenarios(t *testing.T) {
	const n = 20_000
	ratio := func(name, spec string) float64 {
		sc := load(t, name)
		r := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, spec, 8), Seed: 8, Requests: n, Encoder: encoderFor(t, sc)})
		return r.ExpectedMeanReward / r.OracleMeanReward
	}
	linTasks, tsTasks := ratio("tasks", "linucb"), ratio("tasks", "thompson")
	assert.Greater(t, linTasks, 0.95, "linucb on tasks")
	assert.Less(t, tsTasks, 0.9, "a non-contextual policy is capped by the generalist")
	linNonlin := ratio("tasks-nonlinear", "linucb")
	assert.Less(t, linNonlin, 0.88, "no linear model routes the parity well")
	t.Logf("reward / oracle: tasks linucb %.3f thompson %.3f; tasks-nonlinear linucb %.3f", linTasks, tsTasks, linNonlin)
}
