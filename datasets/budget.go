package datasets

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/routelab/routelab/policy"
)

// BudgetRun is a learner's budget router on the test rows: the rows
// stream in a seeded random order; on each the router picks argmax
// predicted quality − price·predicted cost, charges the predicted cost to
// a policy.Budget (the component the gateway's linear-router uses), and
// the realised cost of the chosen model replaces it as soon as the row is
// scored, so the dual price follows observed spend. The price is warmed
// up on the training table first — the same stream over the training rows
// (in-sample predictions, recorded costs), starting from 0 — as a router
// deployed with the state it reached in training; on the test rows it
// keeps adapting, and no test row informs anything before it is routed.
type BudgetRun struct {
	// Cost and Quality are the realised mean cost per prompt (US
	// dollars) and mean score.
	Cost    float64 `json:"cost"`
	Quality float64 `json:"quality"`
	// StartPrice is the dual price (quality per dollar) the training
	// stream ended with and the test stream started from; Price the one
	// it ended with.
	StartPrice float64 `json:"start_price"`
	Price      float64 `json:"final_price"`
	// LimitUSD is the limit the router was held to, in US dollars per
	// prompt (HeldOutResult.BudgetUSD unless calibrated per learner).
	LimitUSD float64 `json:"limit_usd"`
}

// trainBudget is the budget routers' limit: o.BudgetTarget when set,
// else o.Budget (default BudgetShare), of the mean cost per prompt of the
// training table's strongest model. Inactive when o.Budget < 0 and no
// target is set.
func trainBudget(train *Table, o HeldOutOpts) (policy.BudgetSpec, error) {
	share := o.Budget
	if o.BudgetTarget != 0 {
		if !(o.BudgetTarget > 0) {
			return policy.BudgetSpec{}, fmt.Errorf("budget target %v: want a share of the strongest model's cost in (0, 1000]", o.BudgetTarget)
		}
		share = o.BudgetTarget
	}
	if share < 0 {
		return policy.BudgetSpec{}, nil
	}
	if share == 0 {
		share = BudgetShare
	}
	return budgetSpec(train, share, o.BudgetEta)
}

// budgetSpec is a limit of share of the mean cost per prompt of t's
// strongest model, with dual step eta.
func budgetSpec(t *Table, share, eta float64) (policy.BudgetSpec, error) {
	if !(share > 0) || share > 1e3 {
		return policy.BudgetSpec{}, fmt.Errorf("budget share %v: want a share of the strongest model's cost in (0, 1000]", share)
	}
	fixed := fixedMeans(t)
	strong, _ := Strongest(fixed)
	spec := policy.BudgetSpec{PerRequest: share * fixed[strong].Cost, Eta: eta}
	if err := spec.Validate(); err != nil {
		return spec, err
	}
	return spec, nil
}

// budgetCalibOrders is how many stream orders calibrateBudget averages.
const budgetCalibOrders = 4

// calibrateBudget returns the largest share of the strongest model's
// mean cost on fit, from target down to 60% of it in steps of 1% of it,
// whose budget router (warmed up on fit with predictions Qf, Cf, then
// streamed over val with Qv, Cv) spends on val, averaged over
// budgetCalibOrders orders, at most target of the strongest model's
// mean cost on val; and that spend as such a share. When no share in the
// grid stays within the target, the smallest is returned.
func calibrateBudget(fit, val *Table, Qf, Cf, Qv, Cv []float64, target, eta float64, seed uint64) (share, cost float64, err error) {
	vf := fixedMeans(val)
	strong, _ := Strongest(vf)
	want := target * vf[strong].Cost
	for i := 0; i <= 40; i++ {
		share = target * (1 - 0.01*float64(i))
		spec, err := budgetSpec(fit, share, eta)
		if err != nil {
			return 0, 0, err
		}
		cost = 0
		for j := range uint64(budgetCalibOrders) {
			run, err := budgetRouter(fit, val, Qf, Cf, Qv, Cv, spec, seed^(0x63616c<<8|j))
			if err != nil {
				return 0, 0, err
			}
			cost += run.Cost
		}
		cost /= budgetCalibOrders
		if cost <= want {
			break
		}
	}
	return share, cost / vf[strong].Cost, nil
}

// predictRows is p's predicted quality and c's predicted cost of every
// model on every row of t (encoded as X), row-major.
func predictRows(p predictor, c *costModel, t *Table, X []spVec) (Q, C []float64) {
	k := len(t.Models)
	Q = make([]float64, len(t.Rows)*k)
	C = make([]float64, len(t.Rows)*k)
	for r, x := range X {
		p.predict(x, t.Rows[r].Task, Q[r*k:(r+1)*k])
		c.predict(&t.Rows[r], C[r*k:(r+1)*k])
	}
	return Q, C
}

// budgetRouter warms a budget up on train's rows (predictions Qtr, Ctr)
// and then streams test's rows (Q, C) under it, each in an order drawn
// from seed.
func budgetRouter(train, test *Table, Qtr, Ctr, Q, C []float64, b policy.BudgetSpec, seed uint64) (*BudgetRun, error) {
	bud, err := policy.NewBudget(b)
	if err != nil {
		return nil, err
	}
	budgetStream(train, Qtr, Ctr, bud, seed^0x7472)
	start := bud.State()[""].Price
	run := budgetStream(test, Q, C, bud, seed)
	run.StartPrice = start
	return run, nil
}

// budgetStream routes t's rows, in an order drawn from seed, with
// predicted qualities Q and costs C (row-major, len(t.Models) per row)
// under bud, and reports the realised means.
func budgetStream(test *Table, Q, C []float64, bud *policy.Budget, seed uint64) *BudgetRun {
	k := len(test.Models)
	order := rand.New(rand.NewPCG(seed, 0x62756467)).Perm(len(test.Rows))
	var run BudgetRun
	var none time.Time // benchmark rows have no time: per-request budgets only
	for _, r := range order {
		q, c := Q[r*k:(r+1)*k], C[r*k:(r+1)*k]
		m := choose(q, c, bud.Price("", none))
		bud.Charge("", none, c[m])
		real := test.Rows[r].Costs[m]
		bud.Observe("", none, true, c[m], real)
		run.Cost += real
		run.Quality += test.Rows[r].Scores[m]
	}
	n := float64(len(test.Rows))
	run.Cost /= n
	run.Quality /= n
	run.Price = bud.State()[""].Price
	return &run
}

// fixedMeans is each model's mean score and mean cost per prompt over t:
// the "always this model" routers.
func fixedMeans(t *Table) []Point {
	k := len(t.Models)
	fixed := make([]Point, k)
	for r := range t.Rows {
		for m := range k {
			fixed[m].Quality += t.Rows[r].Scores[m]
			fixed[m].Cost += t.Rows[r].Costs[m]
		}
	}
	n := float64(max(len(t.Rows), 1))
	for m := range fixed {
		fixed[m].Quality /= n
		fixed[m].Cost /= n
		fixed[m].Cascade = m >= t.SingleModels()
	}
	return fixed
}
