package datasets

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// rowFeatures are the Features a benchmark row stands for: its task, size
// and prompt (no tenant, no time). Evaluate and the offline learners both
// use it, so both encode a row alike.
func rowFeatures(row *Row) decision.Features {
	return decision.Features{Task: row.Task, PromptTokens: row.PromptTokens, Prompt: row.Prompt}
}

// HeldOutOpts configures HeldOut.
type HeldOutOpts struct {
	// Text is the text block of the encoder; its IDF is fitted on the
	// training table. The zero value means no text features.
	Text policy.TextSpec
	// Learners are the names of the learners to fit (see Learners); empty
	// means all.
	Learners []string
	// Lambdas are the willingness-to-pay values swept (quality lost per US
	// dollar); empty means DefaultLambdas.
	Lambdas []float64
	// Validation is the share of the training table held out to choose
	// each learner's hyper-parameter (0 means 0.2); the chosen learner is
	// then refitted on the whole training table. No test row is used.
	Validation float64
	// Seed drives the validation split and the budget router's order.
	Seed uint64
	// Budget is the budget router's spend limit as a share of the
	// strongest model's mean cost per prompt on the training table (0
	// means BudgetShare; negative, no budget router). See BudgetRun.
	Budget float64
	// BudgetEta is the budget router's dual step (0 means
	// policy.DefaultBudgetEta).
	BudgetEta float64
	// BudgetTarget, when > 0, replaces Budget by a limit calibrated per
	// learner on the validation part of the training table: the largest
	// share of the strongest model's cost (in steps of 1% of the target,
	// down to 60% of it) whose budget router, fitted on the rest of the
	// training table, spends on the validation part no more than
	// BudgetTarget of the strongest model's mean cost there (averaged over
	// budgetCalibOrders stream orders). No test row is used.
	BudgetTarget float64
}

// DefaultLambdas sweep the willingness to pay from 0 (quality only) and 1
// to 10^5 per dollar (the cheapest model everywhere on RouterBench's
// costs), 24 steps per decade.
var DefaultLambdas = func() []float64 {
	out := []float64{0}
	for i := 0; i <= 120; i++ {
		out = append(out, math.Round(math.Pow(10, float64(i)/24)*1000)/1000)
	}
	return out
}()

// Point is one point of a cost–quality curve: mean cost per prompt (US
// dollars) and mean score.
type Point struct {
	Lambda  float64 `json:"lambda"`
	Cost    float64 `json:"cost"`
	Quality float64 `json:"quality"`
	// Cascade marks a fixed point that is an agreement cascade (a model
	// Table.AddCascades added), not one model: Strongest never picks it.
	Cascade bool `json:"cascade,omitempty"`
}

// LearnerCurve is one learner's held-out curve and the choices behind it.
type LearnerCurve struct {
	Learner string `json:"learner"`
	// Hyper names the hyper-parameter chosen on validation ("l2=0.001").
	Hyper string `json:"hyper"`
	// ValidationMSE is the chosen learner's mean squared error of
	// predicted quality on the validation part.
	ValidationMSE float64 `json:"validation_mse"`
	Points        []Point `json:"points"`
	// Choices[l][i] is the model index chosen for test row i at Lambdas[l].
	Choices [][]int `json:"-"`
	// Budget is the learner's budget router streamed over the test rows.
	Budget *BudgetRun `json:"budget_router,omitempty"`
	// BudgetValidationCost is, with HeldOutOpts.BudgetTarget, the
	// calibrated router's mean cost on the validation part as a share of
	// the strongest model's mean cost there.
	BudgetValidationCost float64 `json:"budget_validation_cost_share,omitempty"`
}

// HeldOutResult is the held-out evaluation of every learner on one
// train/test pair.
type HeldOutResult struct {
	Models    []string           `json:"models"`
	TrainRows int                `json:"train_rows"`
	TestRows  int                `json:"test_rows"`
	Encoder   policy.EncoderSpec `json:"-"`
	Fixed     []Point            `json:"fixed"` // per model, Lambda 0
	Oracle    Point              `json:"oracle"`
	Curves    []LearnerCurve     `json:"curves"`
	Lambdas   []float64          `json:"lambdas"`
	// BudgetUSD is the budget routers' limit in US dollars per prompt
	// (HeldOutOpts.Budget of the strongest training model's mean cost);
	// with HeldOutOpts.BudgetTarget, that target's, and each learner's
	// enforced limit is its BudgetRun.LimitUSD.
	BudgetUSD float64 `json:"budget_usd,omitempty"`
	// Test is the test table (for choice export).
	Test *Table `json:"-"`
}

// HeldOut fits every learner on train (hyper-parameters chosen on a
// validation part of train, text IDF fitted on train) and sweeps the
// willingness to pay λ on test: on each test prompt the router picks the
// model with the highest predicted quality − λ·predicted cost, and is
// scored by that model's recorded score and cost. Test rows are used for
// nothing but this scoring.
func HeldOut(ctx context.Context, train, test *Table, o HeldOutOpts) (*HeldOutResult, error) {
	if err := SameModels(train, test); err != nil {
		return nil, err
	}
	if len(train.Rows) < 10 || len(test.Rows) == 0 {
		return nil, fmt.Errorf("held-out evaluation: %d training and %d test rows, need at least 10 and 1", len(train.Rows), len(test.Rows))
	}
	learners := o.Learners
	if len(learners) == 0 {
		learners = Learners
	}
	lambdas := o.Lambdas
	if len(lambdas) == 0 {
		lambdas = DefaultLambdas
	}
	for _, l := range lambdas {
		if !(l >= 0) || math.IsInf(l, 1) {
			return nil, fmt.Errorf("lambda %v: must be a finite number >= 0", l)
		}
	}
	valShare := o.Validation
	if valShare == 0 {
		valShare = 0.2
	}
	spec, err := train.TextEncoderSpec(o.Text)
	if err != nil {
		return nil, err
	}
	enc, err := policy.NewEncoder(spec)
	if err != nil {
		return nil, err
	}
	k := len(train.Models)
	res := &HeldOutResult{Models: train.Models, TrainRows: len(train.Rows), TestRows: len(test.Rows),
		Encoder: enc.Spec(), Lambdas: lambdas, Test: test}
	res.Fixed = fixedMeans(test)
	for r := range test.Rows {
		row := &test.Rows[r]
		best, bestCost := -1.0, 0.0
		for m := range k {
			if row.Scores[m] > best || (row.Scores[m] == best && row.Costs[m] < bestCost) {
				best, bestCost = row.Scores[m], row.Costs[m]
			}
		}
		res.Oracle.Quality += best
		res.Oracle.Cost += bestCost
	}
	nt := float64(len(test.Rows))
	res.Oracle.Quality /= nt
	res.Oracle.Cost /= nt

	// Validation split of the training table; the encoder (its IDF) stays
	// the one fitted on all of train, which sees no test prompt.
	fit, val, err := train.Split(1-valShare, o.Seed^0x76616c)
	if err != nil {
		return nil, fmt.Errorf("validation split: %w", err)
	}
	budget, err := trainBudget(train, o)
	if err != nil {
		return nil, err
	}
	res.BudgetUSD = budget.PerRequest
	Xfit, Xval, Xtrain, Xtest := encodeRows(fit, enc), encodeRows(val, enc), encodeRows(train, enc), encodeRows(test, enc)
	cost := fitCost(train)
	var costFit *costModel
	if o.BudgetTarget > 0 {
		costFit = fitCost(fit)
	}
	dim := enc.Dim()
	for _, name := range learners {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		grid, err := learnerGrid(name)
		if err != nil {
			return nil, err
		}
		bestH, bestMSE, pf, err := chooseHyperMSE(name, grid, fit, val, Xfit, Xval, dim)
		if err != nil {
			return nil, err
		}
		p, err := fitLearner(name, bestH, train, Xtrain, dim)
		if err != nil {
			return nil, err
		}
		lc := LearnerCurve{Learner: name, ValidationMSE: bestMSE, Hyper: bestH.String()}
		Q, C := predictRows(p, cost, test, Xtest)
		lc.Points, lc.Choices = sweep(test, Q, C, lambdas)
		if budget.Active() {
			b := budget
			if o.BudgetTarget > 0 {
				// The limit is calibrated on the validation part, by the
				// chosen learner as fitted without it (pf), as the one
				// below is on all of train.
				Qf, Cf := predictRows(pf, costFit, fit, Xfit)
				Qv, Cv := predictRows(pf, costFit, val, Xval)
				share, vcost, err := calibrateBudget(fit, val, Qf, Cf, Qv, Cv, o.BudgetTarget, o.BudgetEta, o.Seed)
				if err != nil {
					return nil, err
				}
				if b, err = budgetSpec(train, share, o.BudgetEta); err != nil {
					return nil, err
				}
				lc.BudgetValidationCost = vcost
			}
			Qtr, Ctr := predictRows(p, cost, train, Xtrain)
			if lc.Budget, err = budgetRouter(train, test, Qtr, Ctr, Q, C, b, o.Seed); err != nil {
				return nil, err
			}
			lc.Budget.LimitUSD = b.PerRequest
		}
		res.Curves = append(res.Curves, lc)
	}
	return res, nil
}

// sweep routes every test row at every λ by argmax predicted quality −
// λ·predicted cost (ties to the cheaper prediction, then the lower index)
// and returns the curve and the choices.
func sweep(test *Table, Q, C []float64, lambdas []float64) ([]Point, [][]int) {
	k := len(test.Models)
	pts := make([]Point, len(lambdas))
	ch := make([][]int, len(lambdas))
	for l, lam := range lambdas {
		ch[l] = make([]int, len(test.Rows))
		var sq, sc float64
		for r := range test.Rows {
			best := choose(Q[r*k:(r+1)*k], C[r*k:(r+1)*k], lam)
			ch[l][r] = best
			sq += test.Rows[r].Scores[best]
			sc += test.Rows[r].Costs[best]
		}
		n := float64(len(test.Rows))
		pts[l] = Point{Lambda: lam, Cost: sc / n, Quality: sq / n}
	}
	return pts, ch
}

// choose is the index of argmax q − lam·c (ties to the cheaper c, then
// the lower index).
func choose(q, c []float64, lam float64) int {
	best, bv := 0, math.Inf(-1)
	for m := range q {
		v := q[m] - lam*c[m]
		if v > bv || (v == bv && c[m] < c[best]) {
			best, bv = m, v
		}
	}
	return best
}

// Frontier is the non-decreasing upper convex hull of points in the
// (cost, quality) plane: the best quality reachable at each cost by
// choosing (or randomising between) the points. Sorted by cost.
func Frontier(pts []Point) []Point {
	ps := slices.Clone(pts)
	slices.SortFunc(ps, func(a, b Point) int {
		if a.Cost != b.Cost {
			if a.Cost < b.Cost {
				return -1
			}
			return 1
		}
		if a.Quality > b.Quality {
			return -1
		}
		if a.Quality < b.Quality {
			return 1
		}
		return 0
	})
	var h []Point
	for _, p := range ps {
		if len(h) > 0 && p.Quality <= h[len(h)-1].Quality {
			continue // dominated: costs at least as much for no more quality
		}
		for len(h) >= 2 {
			a, b := h[len(h)-2], h[len(h)-1]
			// Drop b when it lies on or below the chord a→p.
			if (b.Quality-a.Quality)*(p.Cost-a.Cost) <= (p.Quality-a.Quality)*(b.Cost-a.Cost) {
				h = h[:len(h)-1]
				continue
			}
			break
		}
		h = append(h, p)
	}
	return h
}

// At is the frontier's quality at cost c: linear between hull points, flat
// after the last, NaN before the first (not reachable).
func At(h []Point, c float64) float64 {
	if len(h) == 0 || c < h[0].Cost {
		return math.NaN()
	}
	for i := 1; i < len(h); i++ {
		if c <= h[i].Cost {
			a, b := h[i-1], h[i]
			if b.Cost == a.Cost {
				return b.Quality
			}
			return a.Quality + (b.Quality-a.Quality)*(c-a.Cost)/(b.Cost-a.Cost)
		}
	}
	return h[len(h)-1].Quality
}

// Metrics are the summary figures of one curve against the fixed models.
type Metrics struct {
	// AIQ is the mean of the frontier's quality over the cost range of the
	// fixed models [cheapest, most expensive] (0 where not reachable).
	AIQ float64 `json:"aiq"`
	// APGR is the mean, over costs from the cheapest model's to the
	// strongest's, of (quality − cheapest's)/(strongest's − cheapest's).
	APGR float64 `json:"apgr"`
	// CPT[i] is the lowest mean cost per prompt of a curve point reaching
	// CPTLevels[i] of the strongest model's quality, as a share of the
	// strongest model's cost (NaN when no point reaches it).
	CPT []float64 `json:"cpt"`
	// AtBudget is the best quality of a curve point costing at most
	// BudgetShare of the strongest model's cost, as a share of the
	// strongest model's quality; AtBudgetCost its cost share.
	AtBudget     float64 `json:"at_budget"`
	AtBudgetCost float64 `json:"at_budget_cost"`
	// AtBudgetHull is the curve's frontier at BudgetShare of the
	// strongest model's cost, as a share of its quality: a router that
	// randomises between the two λ points around the budget (NaN when
	// no point is that cheap).
	AtBudgetHull float64 `json:"at_budget_hull"`
	// AtRef is the best quality of a curve point costing at most the
	// reference model's cost, minus the reference model's quality.
	AtRef float64 `json:"at_ref_gain"`
}

// CPTLevels are the quality shares of the strongest model CPT reports.
var CPTLevels = []float64{0.5, 0.8, 0.9, 0.95}

// BudgetShare is the cost share of the strongest model Metrics.AtBudget uses.
const BudgetShare = 0.25

// Strongest returns the index of the fixed model with the highest quality
// (ties: cheaper) and of the cheapest, among the single models (not
// cascades).
func Strongest(fixed []Point) (strong, cheap int) {
	for m, p := range fixed {
		if !p.Cascade {
			strong, cheap = m, m
			break
		}
	}
	for m, p := range fixed {
		if p.Cascade {
			continue
		}
		if p.Quality > fixed[strong].Quality || (p.Quality == fixed[strong].Quality && p.Cost < fixed[strong].Cost) {
			strong = m
		}
		if p.Cost < fixed[cheap].Cost {
			cheap = m
		}
	}
	return strong, cheap
}

// Measure computes the Metrics of curve pts against fixed, with ref the
// index of the reference model for AtRef.
func Measure(pts, fixed []Point, ref int) Metrics {
	strong, cheap := Strongest(fixed)
	h := Frontier(pts)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, f := range fixed {
		lo, hi = min(lo, f.Cost), max(hi, f.Cost)
	}
	const steps = 1000
	integral := func(a, b float64, f func(float64) float64) float64 {
		s := 0.0
		for i := range steps {
			s += f(a + (b-a)*(float64(i)+0.5)/steps)
		}
		return s / steps
	}
	q := func(c float64) float64 {
		v := At(h, c)
		if math.IsNaN(v) {
			return 0
		}
		return v
	}
	var m Metrics
	m.AIQ = integral(lo, hi, q)
	qs, qw := fixed[strong].Quality, fixed[cheap].Quality
	if qs > qw && fixed[strong].Cost > fixed[cheap].Cost {
		m.APGR = integral(fixed[cheap].Cost, fixed[strong].Cost, func(c float64) float64 {
			v := At(h, c)
			if math.IsNaN(v) {
				v = qw
			}
			return (v - qw) / (qs - qw)
		})
	} else {
		m.APGR = math.NaN()
	}
	cs := fixed[strong].Cost
	for _, lvl := range CPTLevels {
		best := math.NaN()
		for _, p := range pts {
			if p.Quality >= lvl*qs && (math.IsNaN(best) || p.Cost < best) {
				best = p.Cost
			}
		}
		m.CPT = append(m.CPT, best/cs)
	}
	m.AtBudget, m.AtBudgetCost = math.NaN(), math.NaN()
	m.AtBudgetHull = At(h, BudgetShare*cs) / qs
	bestRef := math.Inf(-1)
	for _, p := range pts {
		if p.Cost <= BudgetShare*cs && (math.IsNaN(m.AtBudget) || p.Quality/qs > m.AtBudget) {
			m.AtBudget, m.AtBudgetCost = p.Quality/qs, p.Cost/cs
		}
		if p.Cost <= fixed[ref].Cost {
			bestRef = max(bestRef, p.Quality)
		}
	}
	m.AtRef = bestRef - fixed[ref].Quality
	if math.IsInf(bestRef, -1) {
		m.AtRef = math.NaN()
	}
	return m
}

// StrongShare is RouteLLM's "calls to the strong model" figure: among the
// curve points whose performance gap recovered, (quality −
// cheapest's)/(strongest's − cheapest's), reaches level, the cheapest one's
// share of test prompts sent to the strongest fixed model. NaN when no
// point reaches level or the strongest model is not better than the
// cheapest.
func StrongShare(c *LearnerCurve, fixed []Point, level float64) float64 {
	strong, cheap := Strongest(fixed)
	qs, qw := fixed[strong].Quality, fixed[cheap].Quality
	if !(qs > qw) {
		return math.NaN()
	}
	best := -1
	for l, p := range c.Points {
		if (p.Quality-qw)/(qs-qw) >= level && (best < 0 || p.Cost < c.Points[best].Cost) {
			best = l
		}
	}
	if best < 0 || len(c.Choices) <= best || len(c.Choices[best]) == 0 {
		return math.NaN()
	}
	n := 0
	for _, m := range c.Choices[best] {
		if m == strong {
			n++
		}
	}
	return float64(n) / float64(len(c.Choices[best]))
}
