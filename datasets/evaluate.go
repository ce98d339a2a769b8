package datasets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// BenchCostRef is the cost that halves the reward's cost term in
// BenchReward: $0.001 per prompt. RouterBench's per-prompt costs run from
// about $0.00005 (mistral-7b) to $0.01 (gpt-4 on long prompts); at $0.001
// the cheap models keep a cost term near 0.9 and gpt-4 (about $0.005 on
// ARC) drops to about 0.17, so quality and cost really trade off.
// decision.DefaultReward's $0.002 suits whole conversations, not one prompt.
const BenchCostRef = 0.001

// DefaultLatencyMS is the latency every model gets when Opts.LatencyMS has
// no entry for it: the benchmarks record no latency, so by default the
// latency term is the same constant for every model.
const DefaultLatencyMS = 1000

// BenchReward is decision.DefaultReward (quality 0.6, cost 0.2, latency 0.2)
// with CostRef = BenchCostRef.
func BenchReward() decision.Reward {
	r := decision.DefaultReward()
	r.CostRef = BenchCostRef
	return r
}

// Opts configures Evaluate. The zero value is one pass in table order with
// BenchReward and DefaultLatencyMS.
type Opts struct {
	// Seed drives the row order when Shuffle is set.
	Seed uint64
	// Reward turns a row's outcome into the reward; zero means BenchReward().
	Reward decision.Reward
	// Passes is how many times the table is replayed (0 means 1); each
	// pass has its own order when Shuffle is set, and the policy keeps
	// learning across passes.
	Passes int
	// Shuffle replays each pass in a random order drawn from Seed rather
	// than in table order (which is grouped by task).
	Shuffle bool
	// LatencyMS is each model's latency in milliseconds (for example from
	// the simulator's provider profiles); models without an entry get
	// DefaultLatencyMS.
	LatencyMS map[string]float64
	// Encoder, when set, fills Features.Vector for contextual policies.
	Encoder policy.Encoder
	// Frozen evaluates p without letting it learn: its Update is never
	// called (a policy trained elsewhere, scored on held-out rows).
	Frozen bool
	// CurveEvery, when > 0, records Result.Curve every that many decisions
	// (and after the last): the online learning curve.
	CurveEvery int
	// Log, when set, is called with the core's record of every decision
	// (what a decision log keeps: features, candidates, propensities,
	// outcome, reward). The record is reused: Clone it to keep it. An
	// error stops the run.
	Log func(*decision.Record) error
}

// CurvePoint is the learning curve after Decisions decisions: the running
// means so far.
type CurvePoint struct {
	Decisions  int     `json:"decisions"`
	MeanReward float64 `json:"mean_reward"`
	MeanScore  float64 `json:"mean_score"`
	MeanCost   float64 `json:"mean_cost"`
}

// frozenPolicy is a policy whose Update does nothing.
type frozenPolicy struct{ policy.Policy }

func (frozenPolicy) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

// ObserveSpend passes spend on: a frozen router still enforces its budget.
func (p frozenPolicy) ObserveSpend(f *decision.Features, chosen string, routed bool, cost float64) {
	if so, ok := p.Policy.(policy.SpendObserver); ok {
		so.ObserveSpend(f, chosen, routed, cost)
	}
}

// Result is the outcome of one Evaluate run. Rewards are per decision;
// Regret is the sum over decisions of the oracle's reward minus the
// policy's.
type Result struct {
	Table         string  `json:"table"`
	Policy        string  `json:"policy"`
	PolicyVersion string  `json:"policy_version"`
	Seed          uint64  `json:"seed"`
	Passes        int     `json:"passes"`
	Rows          int     `json:"rows"`
	Decisions     int     `json:"decisions"`
	MeanReward    float64 `json:"mean_reward"`
	// OracleMeanReward is the mean reward of choosing, on every row, the
	// model with the highest reward.
	OracleMeanReward float64 `json:"oracle_mean_reward"`
	Regret           float64 `json:"regret"`
	// MeanScore is the mean benchmark score of the chosen models (accuracy
	// for 0/1 scores).
	MeanScore float64 `json:"mean_score"`
	CostTotal float64 `json:"cost_total_usd"`
	// Shares is the fraction of decisions that went to each model, in
	// table model order.
	Shares []Share `json:"shares"`
	// Fixed is every model's "always choose it" baseline, in table model
	// order; BestFixed names the one with the highest mean reward.
	Fixed     []Fixed `json:"fixed"`
	BestFixed string  `json:"best_fixed"`
	// Curve is the online learning curve (Opts.CurveEvery).
	Curve []CurvePoint `json:"curve,omitempty"`
}

// Share is one model's fraction of the decisions.
type Share struct {
	Model string  `json:"model"`
	Share float64 `json:"share"`
}

// Fixed is the baseline of always choosing Model, over the same decisions.
type Fixed struct {
	Model      string  `json:"model"`
	MeanReward float64 `json:"mean_reward"`
	MeanScore  float64 `json:"mean_score"`
	CostTotal  float64 `json:"cost_total_usd"`
}

// Evaluate replays t through p with full information. Every row is one
// request through the decision core, route.Core.Run: the catalogue is
// t.Models (Arm{ID: model}; prices are 0 because the cost comes from the
// table), the features are the row's Task and PromptTokens (and Vector
// from o.Encoder), p selects a model, the actor reads that model's
// outcome from the row (its score as known quality, its cost, and its
// latency from o), and the core computes the reward with o.Reward and
// updates p. Evaluate itself only counts; the oracle and the fixed
// baselines use the core's reward function on every model's outcome.
func Evaluate(ctx context.Context, t *Table, p policy.Policy, o Opts) (*Result, error) {
	if t == nil || len(t.Rows) == 0 || len(t.Models) == 0 {
		return nil, errors.New("evaluate: empty table")
	}
	if p == nil {
		return nil, errors.New("evaluate: nil policy")
	}
	if o.Passes < 0 {
		return nil, fmt.Errorf("evaluate: passes %d: must be >= 0", o.Passes)
	}
	passes := max(o.Passes, 1)
	rw := o.Reward
	if rw == (decision.Reward{}) {
		rw = BenchReward()
	}
	if err := rw.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate: reward: %w", err)
	}
	k := len(t.Models)
	lat := make([]time.Duration, k)
	for m, ms := range o.LatencyMS {
		if !(ms >= 0) || math.IsInf(ms, 1) {
			return nil, fmt.Errorf("evaluate: latency %v ms of model %q: must be a finite number >= 0", ms, m)
		}
	}
	for i, m := range t.Models {
		ms, ok := o.LatencyMS[m]
		if !ok {
			ms = DefaultLatencyMS
		}
		lat[i] = time.Duration(ms * float64(time.Millisecond))
	}
	for m := range o.LatencyMS {
		if !slices.Contains(t.Models, m) {
			return nil, fmt.Errorf("evaluate: latency for model %q: not a model of table %s", m, t.Name)
		}
	}

	orig := p
	if o.Frozen {
		p = frozenPolicy{p}
	}
	cands := make([]decision.Arm, k)
	for m := range k {
		cands[m] = decision.Arm{ID: t.Models[m]}
	}
	act := &rowActor{t: t, lat: lat, model: make(map[string]int, k)}
	for m, id := range t.Models {
		act.model[id] = m
	}
	core, err := route.NewCore(route.CoreOpts{
		Catalogue: cands,
		Policy:    p,
		Reward:    rw,
		Encoder:   o.Encoder,
		// Benchmark rows have no time.
		Now: func() time.Time { return time.Time{} },
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate: table %s: %w", t.Name, err)
	}

	// The reward of every (row, model) is fixed, so compute it once, with
	// the core's reward function, for the oracle and the fixed baselines.
	n := len(t.Rows)
	rewards := make([]float64, n*k)
	oracle := 0.0
	res := &Result{Table: t.Name, Policy: orig.Name(), PolicyVersion: policy.VersionOf(orig), Seed: o.Seed,
		Passes: passes, Rows: n, Decisions: n * passes, Fixed: make([]Fixed, k), Shares: make([]Share, k)}
	crw := core.Reward()
	for r := range t.Rows {
		row := &t.Rows[r]
		if len(row.Scores) != k || len(row.Costs) != k {
			return nil, fmt.Errorf("evaluate: row %d (%s): %d scores and %d costs for %d models", r, row.ID, len(row.Scores), len(row.Costs), k)
		}
		best := math.Inf(-1)
		for m := range k {
			var out decision.Outcome
			act.outcome(row, m, &out)
			v := crw.Of(&out)
			rewards[r*k+m] = v
			best = max(best, v)
			res.Fixed[m].MeanReward += v
			res.Fixed[m].MeanScore += row.Scores[m]
			res.Fixed[m].CostTotal += row.Costs[m]
		}
		oracle += best
	}
	res.OracleMeanReward = oracle / float64(n)
	bestFixed := 0
	for m := range k {
		f := &res.Fixed[m]
		f.Model = t.Models[m]
		f.MeanReward /= float64(n)
		f.MeanScore /= float64(n)
		f.CostTotal *= float64(passes)
		if f.MeanReward > res.Fixed[bestFixed].MeanReward {
			bestFixed = m
		}
	}
	res.BestFixed = t.Models[bestFixed]

	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x64617461))
	counts := make([]int, k)
	var sumReward, sumScore float64
	// One request and one record for the whole run: the core reuses the
	// record's slices (and the encoder the feature vector's), so a row
	// costs no allocation.
	var (
		req decision.Request
		rec decision.Record
	)
	for pass := range passes {
		if o.Shuffle {
			rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for step, r := range order {
			if step%256 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("evaluate: pass %d: %w", pass+1, err)
				}
			}
			row := &t.Rows[r]
			req.Features = rowFeatures(row)
			req.Features.Vector = rec.Request.Features.Vector[:0]
			act.row = row
			if err := core.Run(ctx, &req, act, &rec); err != nil {
				return nil, fmt.Errorf("evaluate: row %s: %w", row.ID, err)
			}
			if o.Log != nil {
				if err := o.Log(&rec); err != nil {
					return nil, fmt.Errorf("evaluate: row %s: log: %w", row.ID, err)
				}
			}
			i := act.chosen
			v := rec.Reward
			counts[i]++
			sumReward += v
			sumScore += row.Scores[i]
			res.CostTotal += row.Costs[i]
			res.Regret += oracleOf(rewards[r*k:(r+1)*k]) - v
			if o.CurveEvery > 0 {
				done := pass*n + step + 1
				if done%o.CurveEvery == 0 || done == n*passes {
					dn := float64(done)
					res.Curve = append(res.Curve, CurvePoint{Decisions: done, MeanReward: sumReward / dn, MeanScore: sumScore / dn, MeanCost: res.CostTotal / dn})
				}
			}
		}
	}
	d := float64(res.Decisions)
	res.MeanReward = sumReward / d
	res.MeanScore = sumScore / d
	for m := range k {
		res.Shares[m] = Share{Model: t.Models[m], Share: float64(counts[m]) / d}
	}
	return res, nil
}

// rowActor is Evaluate's route.Actor: the outcome of a choice is the
// chosen model's recorded score (as known quality), cost and latency on
// the current row. Evaluate sets row before each Run.
type rowActor struct {
	t     *Table
	lat   []time.Duration
	model map[string]int
	row   *Row
	// chosen is the table model index of the last choice.
	chosen int
}

var _ route.Actor = (*rowActor)(nil)

// Act implements route.Actor.
func (a *rowActor) Act(_ context.Context, _ *decision.Request, d *decision.Decision, o *decision.Outcome) error {
	m, ok := a.model[d.Arm().ID]
	if !ok {
		return fmt.Errorf("model %q is not in table %s", d.Arm().ID, a.t.Name)
	}
	a.chosen = m
	a.outcome(a.row, m, o)
	return nil
}

// outcome fills o with model m's outcome on row, keeping o's Attempts.
func (a *rowActor) outcome(row *Row, m int, o *decision.Outcome) {
	*o = decision.Outcome{Attempts: o.Attempts[:0], Arm: a.t.Models[m], Latency: a.lat[m],
		Cost: row.Costs[m], Quality: row.Scores[m], QualityKnown: true}
}

func oracleOf(rs []float64) float64 {
	best := rs[0]
	for _, v := range rs[1:] {
		best = max(best, v)
	}
	return best
}
