package datasets

import (
	"context"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCalibrateBudget: the calibrated share is the largest of the grid
// whose router spends on the validation rows within the target (the
// next larger one does not), computed from training rows alone.
func TestCalibrateBudget(t *testing.T) {
	// The validation rows are harder than the fitting rows (two in three
	// need the dear model, against two in five), so a router warmed up
	// on fit starts val with too low a price and overspends at first:
	// the calibration has to give up some of the target.
	fit := synthTable(500, 3)
	val := &Table{Name: "synth", Models: fit.Models}
	for i, r := range synthTable(600, 4).Rows {
		if r.Scores[0] == 0 || i%4 == 0 {
			val.Rows = append(val.Rows, r)
		}
	}
	spec, err := fit.TextEncoderSpec(policy.TextSpec{})
	require.NoError(t, err)
	enc, err := policy.NewEncoder(spec)
	require.NoError(t, err)
	Xfit, Xval := encodeRows(fit, enc), encodeRows(val, enc)
	p, err := fitLearner("ridge", hyper{name: "l2", value: 1e-2}, fit, Xfit, enc.Dim())
	require.NoError(t, err)
	cm := fitCost(fit)
	Qf, Cf := predictRows(p, cm, fit, Xfit)
	Qv, Cv := predictRows(p, cm, val, Xval)
	vf := fixedMeans(val)
	strong, _ := Strongest(vf)
	spend := func(share, eta float64) float64 { // the validation spend at share, as calibrateBudget computes it
		spec, err := budgetSpec(fit, share, eta)
		require.NoError(t, err)
		var c float64
		for j := range uint64(budgetCalibOrders) {
			run, err := budgetRouter(fit, val, Qf, Cf, Qv, Cv, spec, 9^(0x63616c<<8|j))
			require.NoError(t, err)
			c += run.Cost / budgetCalibOrders
		}
		return c / vf[strong].Cost
	}
	for _, tc := range []struct{ target, eta float64 }{{0.25, 0}, {0.25, 0.05}, {0.15, 0}, {0.6, 0.001}} {
		share, cost, err := calibrateBudget(fit, val, Qf, Cf, Qv, Cv, tc.target, tc.eta, 9)
		require.NoError(t, err)
		t.Logf("target %.2f eta %g: share %.4f, validation spend %.4f", tc.target, tc.eta, share, cost)
		assert.InDelta(t, spend(share, tc.eta), cost, 1e-12, "the spend reported is the spend at that share")
		assert.LessOrEqual(t, share, tc.target+1e-12)
		assert.GreaterOrEqual(t, share, 0.6*tc.target-1e-12)
		if share > 0.6*tc.target+1e-9 {
			assert.LessOrEqual(t, cost, tc.target, "within the target on validation")
		}
		if next := share + 0.01*tc.target; next <= tc.target+1e-12 {
			assert.Greater(t, spend(next, tc.eta), tc.target, "the next larger share in the grid overspends, so %.4f is the largest", share)
		}
	}
}

// TestHeldOutBudgetTarget: with a target, every learner's budget router
// is held to its own calibrated limit, no larger than the target's.
func TestHeldOutBudgetTarget(t *testing.T) {
	train, test := synthTable(500, 1), synthTable(200, 2)
	res, err := HeldOut(context.Background(), train, test, HeldOutOpts{Learners: []string{"task-mean", "ridge"}, Seed: 1, BudgetTarget: 0.25})
	require.NoError(t, err)
	fixed := fixedMeans(train)
	strong, _ := Strongest(fixed)
	assert.InDelta(t, 0.25*fixed[strong].Cost, res.BudgetUSD, 1e-15, "BudgetUSD is the target's limit")
	for _, c := range res.Curves {
		require.NotNil(t, c.Budget, c.Learner)
		assert.Greater(t, c.Budget.LimitUSD, 0.0, c.Learner)
		assert.LessOrEqual(t, c.Budget.LimitUSD, res.BudgetUSD+1e-15, c.Learner)
		assert.Greater(t, c.BudgetValidationCost, 0.0, c.Learner)
	}
	_, err = HeldOut(context.Background(), train, test, HeldOutOpts{Learners: []string{"task-mean"}, Seed: 1, BudgetTarget: -0.1})
	assert.ErrorContains(t, err, "budget target -0.1")
}
