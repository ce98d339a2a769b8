package policy_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLinearRouterTradesQualityForCost: with x = (1, hard), "dear" is
// predicted better on hard prompts; λ decides whether that is worth its
// cost, and the snapshot restores the same choices.
func TestLinearRouterTradesQualityForCost(t *testing.T) {
	arms := []policy.RouterArm{
		{ID: "cheap", Quality: []float64{0.9, -0.8}, Cost: []float64{0.001, 0}},
		{ID: "dear", Quality: []float64{0.95, 0}, Cost: []float64{0.01, 0}},
	}
	cands := []decision.Arm{{ID: "cheap"}, {ID: "dear"}, {ID: "unknown"}}
	easy, hard := &decision.Features{Vector: []float64{1, 0}}, &decision.Features{Vector: []float64{1, 1}}
	probs := make([]float64, 3)
	for _, tc := range []struct {
		lambda     float64
		easy, hard string
	}{{0, "dear", "dear"}, {10, "cheap", "dear"}, {1000, "cheap", "cheap"}} {
		p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 2, Lambda: tc.lambda, Arms: arms})
		require.NoError(t, err)
		for _, c := range []struct {
			f    *decision.Features
			want string
		}{{easy, tc.easy}, {hard, tc.hard}} {
			i, err := p.Select(context.Background(), c.f, cands, probs)
			require.NoError(t, err)
			assert.Equal(t, c.want, cands[i].ID, "λ=%v %v", tc.lambda, c.f.Vector)
			assert.Equal(t, 1.0, probs[i])
		}
		var buf bytes.Buffer
		require.NoError(t, p.Snapshot(&buf))
		q, err := policy.Load(policy.NewBuiltinRegistry(), bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		i, err := q.Select(context.Background(), hard, cands, probs)
		require.NoError(t, err)
		assert.Equal(t, tc.hard, cands[i].ID, "restored router")
	}
	_, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 3, Arms: arms})
	assert.ErrorContains(t, err, `router arm "cheap": 2 quality and 2 cost weights for dim 3`)
	_, err = policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 2, Lambda: -1})
	assert.ErrorContains(t, err, "lambda -1")
}

// TestLinearRouterBudget: a per-request spend budget, enforced by the
// online dual price, holds a tenant's mean spend near the budget where the
// unconstrained router would always pay for the dear model; another
// tenant's price is its own; the prices and the budget survive a
// snapshot.
func TestLinearRouterBudget(t *testing.T) {
	arms := []policy.RouterArm{
		{ID: "cheap", Quality: []float64{0.7}, Cost: []float64{0.001}},
		{ID: "dear", Quality: []float64{0.9}, Cost: []float64{0.01}},
	}
	cands := []decision.Arm{{ID: "cheap"}, {ID: "dear"}}
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: arms, Budget: policy.BudgetSpec{PerRequest: 0.004}})
	require.NoError(t, err)
	probs := make([]float64, 2)
	spend := 0.0
	const n = 4000
	for i := range n {
		f := &decision.Features{Tenant: "a", Vector: []float64{1}}
		c, err := p.Select(context.Background(), f, cands, probs)
		require.NoError(t, err)
		p.ObserveSpend(f, cands[c].ID, true, arms[c].Cost[0])
		spend += arms[c].Cost[0]
		if i == n/2 {
			spend = 0 // measure after the price settled
		}
	}
	mean := spend / (n / 2)
	assert.InDelta(t, 0.004, mean, 0.0002, "tenant a's mean spend per request")
	assert.Greater(t, p.Price("a"), 0.0)
	assert.Zero(t, p.Price("b"))
	i, err := p.Select(context.Background(), &decision.Features{Tenant: "b", Vector: []float64{1}}, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, "dear", cands[i].ID, "tenant b has spent nothing yet")

	var buf bytes.Buffer
	require.NoError(t, p.Snapshot(&buf))
	q, err := policy.Load(policy.NewBuiltinRegistry(), bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, p.Price("a"), q.(*policy.LinearRouter).Price("a"), "the price survives a snapshot")
	assert.Equal(t, 0.004, q.(policy.Budgeted).BudgetSpec().PerRequest, "the budget survives a snapshot")

	_, err = policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Budget: policy.BudgetSpec{PerRequest: -1}})
	assert.ErrorContains(t, err, "budget.per_request: -1")
}
