package sim_test

import (
	"context"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScenarioBudget: a scenario's budget block is validated with the
// scenario (errors name the field) and needs a policy that enforces one.
func TestScenarioBudget(t *testing.T) {
	sc, err := sim.LoadScenario("steady")
	require.NoError(t, err)
	sc.Budget = &policy.BudgetSpec{Window: 0, Limit: 3}
	assert.ErrorContains(t, sc.Validate(), "budget.window: a limit per window needs a window > 0")
	sc.Budget = &policy.BudgetSpec{PerRequest: 0.001}
	p, err := policy.NewBuiltinRegistry().NewFromString("thompson")
	require.NoError(t, err)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Requests: 10})
	assert.ErrorContains(t, err, "budget: policy thompson enforces no spend budget")
	r, err := policy.NewLinearRouter(policy.LinearRouterOpts{})
	require.NoError(t, err)
	enc, err := policy.NewEncoder(sc.EncoderSpec())
	require.NoError(t, err)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: r, Requests: 10, Encoder: enc})
	require.NoError(t, err)
	assert.Equal(t, 0.001, r.BudgetSpec().PerRequest, "the scenario's budget is set on the policy")
	assert.Greater(t, r.Price(""), 0.0, "the simulated requests' realised cost reached the budget")
}
