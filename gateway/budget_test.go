package gateway

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pricedSim is fastSim with prices, so requests cost something.
var pricedSim = strings.NewReplacer("{id: s1, provider: sim,", "{id: s1, provider: sim, price_in: 0.01, price_out: 0.03,",
	"{id: s2, provider: sim,", "{id: s2, provider: sim, price_in: 0.02, price_out: 0.06,").Replace(fastSim)

// TestPolicyBudgetConfig: policy.budget sets the budget of a linear-router
// artifact, the router's price then rises on the realised cost of the
// gateway's requests (its cost predictions are 0), and a bad budget block
// is a start-up error naming the field.
func TestPolicyBudgetConfig(t *testing.T) {
	require.Contains(t, pricedSim, "price_in: 0.02")
	cfg, err := ParseConfig([]byte(pricedSim))
	require.NoError(t, err)
	enc, err := policy.NewEncoder(cfg.EncoderSpec())
	require.NoError(t, err)
	zero := make([]float64, enc.Dim())
	r, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: enc.Dim(), Arms: []policy.RouterArm{
		{ID: "s1", Quality: zero, Cost: zero}, {ID: "s2", Quality: zero, Cost: zero}}})
	require.NoError(t, err)
	a, err := artifact.New(r, cfg.EncoderSpec(), decision.DefaultReward(), []string{"s1", "s2"}, artifact.Provenance{Source: "test"})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "router.json")
	require.NoError(t, artifact.Write(path, a))

	srv, _, err := ckptGateway(t, pricedSim+"policy:\n  file: "+path+"\n  budget: {per_request: 0.0000001, tenants: {acme: {limit: 2}}, window: 1h}\n")
	require.NoError(t, err)
	lr, ok := srv.Core().Policy().(*policy.LinearRouter)
	require.True(t, ok)
	assert.Equal(t, 0.0000001, lr.BudgetSpec().PerRequest)
	routeSome(t, srv, 5)
	assert.Greater(t, lr.Price(""), 0.0, "the realised cost of the requests raised the price (the router predicted 0)")

	for _, tc := range []struct{ budget, want string }{
		{"{window: 1h, limit: -5}", "policy.budget.limit: -5 must be"},
		{"{limit: 5}", "policy.budget.window: a limit per window needs a window > 0"},
		{"{window: 0s, limit: 5}", "policy.budget.window: a limit per window needs a window > 0"},
		{"{per_request: 0.1, cap: 3}", "field cap not found"},
	} {
		_, err := ParseConfig([]byte(pricedSim + "policy: {file: " + path + ", budget: " + tc.budget + "}\n"))
		require.Error(t, err, tc.budget)
		assert.Contains(t, err.Error(), tc.want, tc.budget)
	}
	_, _, err = ckptGateway(t, pricedSim+"policy: {name: thompson, budget: {per_request: 0.1}}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "policy.budget: policy thompson enforces no spend budget")
}
