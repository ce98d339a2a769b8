package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// Target is a policy to evaluate on the logs.
type Target struct {
	// Name labels the target in results; empty means Policy.Name().
	Name   string
	Policy policy.Policy
}

// Opts configures Evaluate. The zero value evaluates every estimator with
// Open Bandit Pipeline's defaults (no clipping, Switch τ = ∞, DR-OS λ = 0),
// 200 bootstrap resamples and two cross-fitting folds.
type Opts struct {
	// Estimators to report, in this order; nil means AllEstimators().
	Estimators []Estimator
	// Clip caps importance weights in clipped IPS; 0 means +Inf (no cap,
	// OBP's default: clipped-ips then equals ips). A finite cap trades bias
	// for variance: clipped IPS then estimates E[min(w, Clip)·r], which is
	// below the target's value, and its interval is an interval for that
	// clipped quantity, not for the value.
	Clip float64
	// Tau is Switch-DR's weight threshold (the DR correction is kept where
	// w <= Tau, the rest is the reward model's); 0 means +Inf (OBP's
	// default: switch-dr then equals dr).
	Tau float64
	// Lambda is DR-OS's shrinkage w ↦ λw/(w²+λ). 0 (the zero value and
	// OBP's default) shrinks every weight to 0, so dr-os equals dm; +Inf
	// leaves the weights alone, so dr-os equals dr.
	Lambda float64
	// Tune selects Clip, Tau and Lambda per target by estimated mean
	// squared error, as OBP's hyperparameter tuning does: over TuneGrid
	// (and +Inf; for λ also 0), the value minimising (V̂(θ) − V̂_unbiased)²
	// + Var̂(θ)/n, where V̂_unbiased is ips (for clip) or dr (for τ and λ).
	// Clip, Tau and Lambda are then ignored; Result.Param names the chosen
	// value. The interval uses the chosen value in every resample (it does
	// not repeat the selection).
	Tune bool
	// TuneGrid is the candidate grid of Tune; nil means 1, 2, 5, 10, 20,
	// 50, 100, 1000.
	TuneGrid []float64
	// AllowMissingSupport evaluates targets that put probability on arms
	// the logger never plays (logged propensity 0). Without it such a
	// target is an error (ErrMissingSupport) naming the share of rows
	// affected: no estimator sees rewards that were never logged, so the
	// importance-weighted ones silently ignore that mass and the model-based
	// ones extrapolate.
	AllowMissingSupport bool
	// Segment, optional, names each row's segment (task, tenant, arm, ...);
	// Evaluate then reports, after the overall results, the same table for
	// every segment (in sorted order), with Result.Segment set. The reward
	// model is fitted on all rows.
	Segment func(rec *decision.Record) string
	// Bootstrap is the number of bootstrap resamples for the confidence
	// intervals; 0 means 200, negative means no intervals.
	Bootstrap int
	// Level is the confidence level of the intervals; 0 means 0.95.
	Level float64
	// Seed seeds the bootstrap; the same seed gives the same intervals.
	Seed uint64
	// Folds is the number of cross-fitting folds of the reward model; a row
	// is scored by a model trained on the other folds. 0 means 2; 1 fits
	// and scores on the same rows (in-sample, optimistic).
	Folds int
	// Model makes one reward model per fold (and per fold and bootstrap
	// resample); nil means &Ridge{}.
	Model func() RewardModel
	// Observer, optional, sees every row of the evaluation pass (for
	// exports such as WriteOBP).
	Observer Observer
}

// ErrMissingSupport: a target puts probability on arms the logger never
// plays (see Opts.AllowMissingSupport).
var ErrMissingSupport = errors.New("missing support")

// Observer sees the evaluation pass row by row.
type Observer interface {
	// Start is called once, before the first row, with the sorted ids of
	// every arm that appears as a candidate anywhere in the log.
	Start(arms []string) error
	// Observe is called for every row and target. The view and its slices
	// are valid only during the call.
	Observe(v *RowView) error
}

// RowView is one logged row as one target sees it.
type RowView struct {
	// Target indexes the targets passed to Evaluate; Name is its label.
	Target int
	Name   string
	// Index is the row's position in the source.
	Index  int64
	Record *decision.Record
	// Pi is the target's probability of every candidate; Q the reward
	// model's prediction for every candidate (zeros when no estimator
	// needs a model).
	Pi, Q []float64
}

// LoggedPolicy is the Result.Policy of the logging policy's own value.
const LoggedPolicy = "logged"

// Result is one estimate. Value, CILow and CIHigh are NaN when undefined
// (no interval requested, or the estimator has nothing to average); JSON
// renders NaN as null.
type Result struct {
	Policy    string    `json:"policy"`
	Estimator Estimator `json:"estimator"`
	// Segment is empty for the whole log, else the segment's name (see
	// Opts.Segment).
	Segment string  `json:"segment,omitempty"`
	Value   float64 `json:"value"`
	// CILow and CIHigh bound the interval, intersected with the reward
	// range [0,1] (every reward is in it, so the value is too); CIClipped
	// says the intersection changed it.
	CILow     float64 `json:"ci_low"`
	CIHigh    float64 `json:"ci_high"`
	CIClipped bool    `json:"ci_clipped,omitempty"`
	// Interval names the method of the interval.
	Interval string `json:"interval"`
	// Param is the hyperparameter used ("clip=10", "tau=inf",
	// "lambda=0"), empty for estimators without one; Tuned says Opts.Tune
	// chose it.
	Param string `json:"param,omitempty"`
	Tuned bool   `json:"tuned,omitempty"`
	// ESS is Kish's effective sample size (Σw)²/Σw² of the weights the
	// estimator uses (clipped for clipped-ips, shrunk for dr-os, replay's
	// acceptances for replay; the number of rows for dm and on-policy).
	// Kish's ESS is blind to a constant weight (it is n for w ≡ 0.5):
	// read it together with MeanWeight, which should be near 1.
	ESS float64 `json:"ess"`
	// N is the number of logged rows used.
	N int64 `json:"n"`
	// MaxWeight and MeanWeight describe the raw importance weights
	// π(a|x)/μ(a|x) of the logged choices; MeanWeight should be near 1
	// when the logger covers the target. Over10 is the share of rows
	// whose weight exceeds 10.
	MaxWeight  float64  `json:"max_weight"`
	MeanWeight float64  `json:"mean_weight"`
	Over10     float64  `json:"share_weight_over_10"`
	Warnings   []string `json:"warnings,omitempty"`
}

// MarshalJSON renders NaN and infinities as null.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain struct {
		Policy     string    `json:"policy"`
		Estimator  Estimator `json:"estimator"`
		Segment    string    `json:"segment,omitempty"`
		Value      *float64  `json:"value"`
		CILow      *float64  `json:"ci_low"`
		CIHigh     *float64  `json:"ci_high"`
		CIClipped  bool      `json:"ci_clipped,omitempty"`
		Interval   string    `json:"interval"`
		Param      string    `json:"param,omitempty"`
		Tuned      bool      `json:"tuned,omitempty"`
		ESS        *float64  `json:"ess"`
		N          int64     `json:"n"`
		MaxWeight  *float64  `json:"max_weight"`
		MeanWeight *float64  `json:"mean_weight"`
		Over10     *float64  `json:"share_weight_over_10"`
		Warnings   []string  `json:"warnings,omitempty"`
	}
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(plain{r.Policy, r.Estimator, r.Segment, num(r.Value), num(r.CILow), num(r.CIHigh), r.CIClipped,
		r.Interval, r.Param, r.Tuned, num(r.ESS), r.N, num(r.MaxWeight), num(r.MeanWeight), num(r.Over10), r.Warnings})
}

// cfg is Opts with defaults applied and the hyperparameter grids laid out.
type cfg struct {
	Opts
	clips, taus, lambdas []float64 // candidate values; one each unless tuning
	width                int       // length of a sums vector
}

// Layout of a sums vector: the fixed sums, then one per candidate clip,
// τ and λ. Every estimator is a ratio of these, so a bootstrap resample
// recomputes all of them.
const (
	sN    = iota // rows
	sR           // r (on-policy value of the logger)
	sWR          // w·r
	sW           // w
	sDM          // Σ_a π(a|x) q̂(x,a)
	sWRes        // w·(r − q̂(x,a))
	sAR          // replay acceptance·r
	sA           // replay acceptance
	nBase
)

func (c *cfg) cr(j int) int { return nBase + j }                              // min(w, clip_j)·r
func (c *cfg) sw(j int) int { return nBase + len(c.clips) + j }               // w·(r − q̂)·1{w ≤ τ_j}
func (c *cfg) sh(j int) int { return nBase + len(c.clips) + len(c.taus) + j } // ŵ_j·(r − q̂)

var defaultTuneGrid = []float64{1, 2, 5, 10, 20, 50, 100, 1000}

func (o Opts) withDefaults() (*cfg, error) {
	if o.Estimators == nil {
		o.Estimators = AllEstimators()
	}
	for _, e := range o.Estimators {
		if !e.valid() {
			return nil, fmt.Errorf("estimator %q: unknown", e)
		}
	}
	def := func(name string, v *float64, d float64) error {
		if math.IsNaN(*v) || math.IsInf(*v, -1) || *v < 0 {
			return fmt.Errorf("option %s: %v must be a number >= 0 (or +Inf)", name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	if err := def("clip", &o.Clip, math.Inf(1)); err != nil {
		return nil, err
	}
	if err := def("tau", &o.Tau, math.Inf(1)); err != nil {
		return nil, err
	}
	if err := def("lambda", &o.Lambda, 0); err != nil {
		return nil, err
	}
	if math.IsInf(o.Level, 0) {
		return nil, fmt.Errorf("option level: %v must be in (0,1)", o.Level)
	}
	if err := def("level", &o.Level, 0.95); err != nil {
		return nil, err
	}
	if o.Level >= 1 {
		return nil, fmt.Errorf("option level: %v must be in (0,1)", o.Level)
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = 200
	}
	if o.Folds < 0 {
		return nil, fmt.Errorf("option folds: %d must be >= 0", o.Folds)
	}
	if o.Folds == 0 {
		o.Folds = 2
	}
	if o.Model == nil {
		o.Model = func() RewardModel { return &Ridge{} }
	}
	c := &cfg{Opts: o}
	if o.Tune {
		grid := o.TuneGrid
		if grid == nil {
			grid = defaultTuneGrid
		}
		for _, g := range grid {
			if !(g > 0) || math.IsInf(g, 0) {
				return nil, fmt.Errorf("option tune grid: %v must be a finite number > 0", g)
			}
		}
		inf := math.Inf(1)
		c.clips = append(slices.Clone(grid), inf)
		c.taus = append(slices.Clone(grid), inf)
		c.lambdas = append(append([]float64{0}, grid...), inf)
	} else {
		c.clips, c.taus, c.lambdas = []float64{o.Clip}, []float64{o.Tau}, []float64{o.Lambda}
	}
	c.width = nBase + len(c.clips) + len(c.taus) + len(c.lambdas)
	return c, nil
}

// shrink is DR-OS's weight λw/(w²+λ), with its limits λ = 0 (0) and
// λ = ∞ (w).
func shrink(w, lambda float64) float64 {
	switch {
	case lambda == 0:
		return 0
	case math.IsInf(lambda, 1):
		return w
	}
	return lambda * w / (w*w + lambda)
}

// contrib writes one row's contribution to every sum into out.
func (c *cfg) contrib(out, pi, mu, q []float64, ch int, r float64) {
	w := pi[ch] / mu[ch]
	dm := 0.0
	for j := range mu {
		dm += pi[j] * q[j]
	}
	res := r - q[ch]
	out[sN] = 1
	out[sR] = r
	out[sWR] = w * r
	out[sW] = w
	out[sDM] = dm
	out[sWRes] = w * res
	out[sAR] = pi[ch] * r
	out[sA] = pi[ch]
	for j, cl := range c.clips {
		out[c.cr(j)] = math.Min(w, cl) * r
	}
	for j, t := range c.taus {
		out[c.sw(j)] = 0
		if w <= t {
			out[c.sw(j)] = w * res
		}
	}
	for j, l := range c.lambdas {
		out[c.sh(j)] = shrink(w, l) * res
	}
}

// value computes estimator e from sums s with hyperparameter index j;
// NaN when undefined.
func (c *cfg) value(e Estimator, s []float64, j int) float64 {
	n := s[sN]
	if n == 0 {
		return math.NaN()
	}
	switch e {
	case OnPolicy:
		return s[sR] / n
	case Replay:
		if s[sA] == 0 {
			return math.NaN()
		}
		return s[sAR] / s[sA]
	case IPS:
		return s[sWR] / n
	case ClippedIPS:
		return s[c.cr(j)] / n
	case SNIPS:
		if s[sW] == 0 {
			return math.NaN()
		}
		return s[sWR] / s[sW]
	case DM:
		return s[sDM] / n
	case DR:
		return (s[sDM] + s[sWRes]) / n
	case SNDR:
		if s[sW] == 0 {
			return s[sDM] / n
		}
		return s[sDM]/n + s[sWRes]/s[sW]
	case SwitchDR:
		return (s[sDM] + s[c.sw(j)]) / n
	case DROS:
		return (s[sDM] + s[c.sh(j)]) / n
	}
	return math.NaN()
}

// kish accumulates Σw and Σw² for an effective sample size.
type kish struct{ s, s2 float64 }

func (k *kish) add(w float64) { k.s += w; k.s2 += w * w }

func (k kish) ess() float64 {
	if k.s2 == 0 {
		return 0
	}
	return k.s * k.s / k.s2
}

// acc is the evaluation state of one target on one segment.
type acc struct {
	name, seg string
	total     []float64
	sq        []float64   // Σ per-row value² per sums index (for tuning)
	boot      [][]float64 // [resample][sums index]
	gbase     []float64   // grouped bootstrap: [group·width + sums index], sums with q̂ = 0
	gmod      [][]float64 // grouped bootstrap: [arm][(group·folds+fold)·blk + ...], the sums' terms linear in q̂

	raw, accept   kish
	clipK, shrK   []kish // per candidate clip / λ
	maxW          float64
	over10        int64
	supportRows   int64   // rows where the target put mass on μ=0 arms
	supportMass   float64 // Σ over rows of that mass
	nonUniform    int64   // rows whose logger was not uniform (replay's assumption)
	firstK        int
	kVaries       bool
	defaultReward int64
	rowsSeen      int64
}

func newAcc(name, seg string, c *cfg) *acc {
	a := &acc{name: name, seg: seg, total: make([]float64, c.width), sq: make([]float64, c.width), firstK: -1,
		clipK: make([]kish, len(c.clips)), shrK: make([]kish, len(c.lambdas))}
	if c.Bootstrap > 0 {
		a.boot = make([][]float64, c.Bootstrap)
		for b := range a.boot {
			a.boot[b] = make([]float64, c.width)
		}
	}
	return a
}

// target is one target policy's state: the whole log, then its segments.
type target struct {
	name string
	p    policy.Policy
	all  *acc
	segs map[string]*acc
}

func (t *target) seg(name string, c *cfg) *acc {
	a := t.segs[name]
	if a == nil {
		a = newAcc(t.name, name, c)
		t.segs[name] = a
	}
	return a
}

// Evaluate estimates the value of every target on the logged rows of src
// with the estimators of o. It returns first the logging policy's own
// value (Policy LoggedPolicy, Estimator OnPolicy: the mean logged
// reward), then one Result per target and estimator (targets outer,
// estimators inner, in the given orders); with Opts.Segment the same block
// follows for every segment.
//
// Targets are evaluated frozen: Evaluate calls their Select on each logged
// request and candidate set to get π(·|x), and never Update, so a learning
// policy is evaluated as it stands (its learned state is not changed, though
// a randomised policy's generator advances). A randomised Select that
// reports the one-hot of an internal draw (Thompson with one draw) gives an
// unbiased but noisier estimate than exact probabilities would.
//
// The intervals are percentile intervals of a Poisson bootstrap: resample
// b gives row i the weight c ~ Poisson(1) drawn from (Seed, i, b), so both
// passes see the same resample without storing it; the reward model is
// refitted (cross-fitted, on the resample's weights) in every resample, so
// the intervals of dm, dr, sndr, switch-dr and dr-os include the model's
// estimation error, which a model held fixed across resamples leaves out
// (such intervals covered the truth 5–76% of the time). With the default
// Ridge model on feature vectors and at least 50,000 rows, resample b
// weights instead each of 256 random row groups (a seeded hash of the row
// index) by a Poisson(1) count drawn from (Seed, b, group), and refits the
// ridge from per-group sufficient statistics (see the package doc): the
// same refit, at a cost per row independent of the number of resamples.
//
// Every row is validated (see ErrMissingPropensity and its siblings); the
// first invalid row stops the evaluation with an error naming it.
func Evaluate(ctx context.Context, src Source, targets []Target, o Opts) ([]Result, error) {
	c, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("evaluate: no target policy")
	}
	tgts := make([]*target, len(targets))
	for i, t := range targets {
		if t.Policy == nil {
			return nil, fmt.Errorf("target %d (%q): nil policy", i, t.Name)
		}
		name := t.Name
		if name == "" {
			name = t.Policy.Name()
		}
		tgts[i] = &target{name: name, p: t.Policy, all: newAcc(name, "", c), segs: map[string]*acc{}}
	}
	needModel := false
	for _, e := range c.Estimators {
		needModel = needModel || e.NeedsModel()
	}

	// Pass 1 (only when a model must be fitted or an observer wants the arm
	// list): validate, fit the per-fold (and per-resample) reward models,
	// collect arm ids.
	var fit *fitted
	var rows1 int64 = -1
	// With the default Ridge model on feature vectors, pass 1 also collects
	// its sufficient statistics per random row group, and the resamples
	// weight groups (see the doc above); otherwise they weight rows and fit
	// one model per resample and fold.
	var rg *ridgeGroups
	if needModel && c.Bootstrap > 0 {
		if m, ok := c.Model().(*Ridge); ok {
			rg = newRidgeGroups(m.lambda(), c.Folds)
		}
	}
	grouped := false
	if needModel || c.Observer != nil {
		fit, err = fitPass(ctx, src, c, needModel, rg == nil, rg)
		if err != nil {
			return nil, err
		}
		grouped = rg != nil && rg.ok && rg.dim > 1 && fit.rows >= groupedMinRows
		if rg != nil && !grouped {
			first := fit.rows
			if fit, err = fitPass(ctx, src, c, needModel, true, nil); err != nil {
				return nil, err
			}
			if fit.rows != first {
				return nil, fmt.Errorf("evaluate: source yielded %d rows on the second pass, %d on the first", fit.rows, first)
			}
		}
		rows1 = fit.rows
		if c.Observer != nil {
			if err := c.Observer.Start(fit.arms); err != nil {
				return nil, fmt.Errorf("observer start: %w", err)
			}
		}
	}

	// Pass 2: score every row under every target.
	var (
		idx    int64
		q, pi  []float64
		qb     [][]float64
		counts = make([]float64, max(c.Bootstrap, 0))
		phi    []float64
		zero   []float64
		cur    = make([]float64, c.width)
		bc     = make([]float64, c.width)
		view   RowView
	)
	if needModel {
		qb = make([][]float64, len(counts))
	}
	if grouped {
		counts = nil
	}
	err = src.Scan(ctx, func(rec *decision.Record) error {
		i := idx
		idx++
		if i&8191 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if rows1 < 0 {
			if err := checkRecord(rec); err != nil {
				return rowErr(i, rec, err)
			}
		} else if i >= rows1 {
			return fmt.Errorf("source yielded more rows on the second pass than the %d of the first", rows1)
		}
		k := len(rec.Decision.Candidates)
		q = grow(q, k)
		pi = grow(pi, k)
		f := fold(rec, i, c.Folds)
		if needModel {
			if err := predict(fit.models[f], rec, q); err != nil {
				return rowErr(i, rec, err)
			}
		} else {
			clear(q)
		}
		var g int
		if grouped {
			g = groupOf(c.Seed, i)
			v := rec.Request.Features.Vector
			if len(v)+1 != rg.dim {
				return rowErr(i, rec, fmt.Errorf("feature vector of length %d on the second pass, %d on the first", len(v), rg.dim-1))
			}
			phi = grow(phi, rg.dim)
			phi[0] = 1
			copy(phi[1:], v)
			zero = grow(zero, k)
			clear(zero)
		} else {
			poissonRow(c.Seed, i, counts)
		}
		for b := range counts {
			if needModel && counts[b] > 0 {
				qb[b] = grow(qb[b], k)
				if err := predict(fit.boot[b][f], rec, qb[b]); err != nil {
					return rowErr(i, rec, fmt.Errorf("bootstrap resample %d: %w", b, err))
				}
			}
		}
		seg := ""
		if c.Segment != nil {
			seg = c.Segment(rec)
		}
		for t, tg := range tgts {
			if _, err := tg.p.Select(ctx, &rec.Request.Features, rec.Decision.Candidates, pi); err != nil {
				return rowErr(i, rec, fmt.Errorf("%w: %s select: %w", ErrTarget, tg.name, err))
			}
			if err := checkProbs(pi[:k]); err != nil {
				return rowErr(i, rec, fmt.Errorf("%w: %s: %w", ErrTarget, tg.name, err))
			}
			accs := []*acc{tg.all}
			if c.Segment != nil {
				accs = append(accs, tg.seg(seg, c))
			}
			c.contrib(cur, pi, rec.Decision.Probs, q, rec.Decision.Chosen, rec.Reward)
			for _, a := range accs {
				a.row(rec, pi, cur, c)
			}
			if grouped {
				c.contrib(bc, pi, rec.Decision.Probs, zero, rec.Decision.Chosen, rec.Reward)
				for _, a := range accs {
					if err := a.groupRow(c, rg, g, f, bc, rec, pi, phi); err != nil {
						return rowErr(i, rec, err)
					}
				}
			}
			for b, n := range counts {
				if n == 0 {
					continue
				}
				src := cur
				if needModel {
					c.contrib(bc, pi, rec.Decision.Probs, qb[b], rec.Decision.Chosen, rec.Reward)
					src = bc
				}
				for _, a := range accs {
					dst := a.boot[b]
					for s, v := range src {
						dst[s] += n * v
					}
				}
			}
			if c.Observer != nil {
				view = RowView{Target: t, Name: tg.name, Index: i, Record: rec, Pi: pi, Q: q}
				if err := c.Observer.Observe(&view); err != nil {
					return fmt.Errorf("row %d: observer: %w", i, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if rows1 >= 0 && idx != rows1 {
		return nil, fmt.Errorf("evaluate: source yielded %d rows on the second pass, %d on the first", idx, rows1)
	}
	if idx == 0 {
		return nil, fmt.Errorf("evaluate: the log has no rows")
	}
	if !c.AllowMissingSupport {
		for _, tg := range tgts {
			if a := tg.all; a.supportRows > 0 {
				n := float64(a.rowsSeen)
				return nil, fmt.Errorf("evaluate %q: %w: on %d of %d rows (%.3g%%) the target puts probability on arms the logger never plays there (propensity 0), %.3g%% of its total mass; no estimator sees rewards that were never logged (allow it with AllowMissingSupport / --allow-missing-support to get estimates that ignore or extrapolate that mass)",
					tg.name, ErrMissingSupport, a.supportRows, a.rowsSeen, 100*float64(a.supportRows)/n, 100*a.supportMass/n)
			}
		}
	}

	if grouped {
		if err := groupResamples(c, rg, tgts); err != nil {
			return nil, err
		}
	}
	interval := "none"
	switch {
	case grouped:
		interval = fmt.Sprintf("grouped poisson bootstrap (%d random row groups), %d resamples, percentile", bootGroups, c.Bootstrap)
	case c.Bootstrap > 0:
		interval = fmt.Sprintf("poisson bootstrap, %d resamples, percentile", c.Bootstrap)
	}
	modelInterval := interval
	if c.Bootstrap > 0 && needModel {
		modelInterval += ", reward model refitted per resample"
	}
	var out []Result
	emit := func(accs []*acc) {
		// The logger's own value: the same rows, the same resamples.
		lg := accs[0]
		r := Result{Policy: LoggedPolicy, Estimator: OnPolicy, Segment: lg.seg, Value: c.value(OnPolicy, lg.total, 0),
			CILow: math.NaN(), CIHigh: math.NaN(), Interval: interval, ESS: float64(lg.rowsSeen), N: lg.rowsSeen,
			MaxWeight: 1, MeanWeight: 1}
		c.interval(&r, lg, 0)
		out = append(out, r)
		for _, a := range accs {
			out = append(out, a.results(c, interval, modelInterval)...)
		}
	}
	all := make([]*acc, len(tgts))
	for t, tg := range tgts {
		all[t] = tg.all
	}
	emit(all)
	if c.Segment != nil {
		names := make([]string, 0, len(tgts[0].segs))
		for s := range tgts[0].segs {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, s := range names {
			accs := make([]*acc, len(tgts))
			for t, tg := range tgts {
				accs[t] = tg.segs[s]
			}
			emit(accs)
		}
	}
	return out, nil
}

// predict runs the model and rejects non-finite predictions.
func predict(m RewardModel, rec *decision.Record, q []float64) error {
	if err := m.Predict(rec, q); err != nil {
		return err
	}
	for j := range q {
		if math.IsNaN(q[j]) || math.IsInf(q[j], 0) {
			return fmt.Errorf("reward model predicted %v for arm %q", q[j], rec.Decision.Candidates[j].ID)
		}
	}
	return nil
}

// results turns one accumulator into its Results.
func (a *acc) results(c *cfg, interval, modelInterval string) []Result {
	n := float64(a.rowsSeen)
	common := a.warnings()
	jc, jt, jl := 0, 0, 0
	if c.Tune {
		ips, dr := c.value(IPS, a.total, 0), c.value(DR, a.total, 0)
		jc = a.tune(c, ips, func(j int) (int, float64) { return c.cr(j), 0 }, len(c.clips))
		jt = a.tune(c, dr, func(j int) (int, float64) { return c.sw(j), a.total[sDM] }, len(c.taus))
		jl = a.tune(c, dr, func(j int) (int, float64) { return c.sh(j), a.total[sDM] }, len(c.lambdas))
	}
	var out []Result
	for _, est := range c.Estimators {
		j := 0
		r := Result{
			Policy: a.name, Estimator: est, Segment: a.seg,
			CILow: math.NaN(), CIHigh: math.NaN(), N: a.rowsSeen, Interval: interval,
			MaxWeight: a.maxW, MeanWeight: a.raw.s / n, Over10: float64(a.over10) / n, Tuned: c.Tune,
		}
		if est.NeedsModel() {
			r.Interval = modelInterval
		}
		switch est {
		case Replay:
			r.ESS = a.accept.ess()
		case ClippedIPS:
			j = jc
			r.ESS = a.clipK[j].ess()
			r.Param = "clip=" + fmtParam(c.clips[j])
		case SwitchDR:
			j = jt
			r.ESS = a.raw.ess()
			r.Param = "tau=" + fmtParam(c.taus[j])
		case DROS:
			j = jl
			r.ESS = a.shrK[j].ess()
			if c.lambdas[j] == 0 {
				r.ESS = n // every weight shrunk to 0: it is dm
			}
			r.Param = "lambda=" + fmtParam(c.lambdas[j])
		case DM:
			r.ESS = n
		default:
			r.ESS = a.raw.ess()
		}
		if r.Param == "" {
			r.Tuned = false
		}
		r.Value = c.value(est, a.total, j)
		c.interval(&r, a, j)
		r.Warnings = append(r.Warnings, common...)
		if est == Replay {
			if rw := a.replayWarnings(); len(rw) > 0 {
				// Replay's value is biased when its assumptions fail, so an
				// interval around it would cover the truth by accident only
				// (measured: 10% coverage by `routelab ope-bench` on an
				// ε-greedy log): report none.
				r.CILow, r.CIHigh, r.CIClipped = math.NaN(), math.NaN(), false
				r.Interval = "none: replay's assumptions fail on this log"
				r.Warnings = append(r.Warnings, rw...)
			}
		}
		if math.IsNaN(r.Value) {
			r.Warnings = append(r.Warnings, "undefined: no logged choice has positive target probability")
		} else if r.Value < 0 || r.Value > 1 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("estimate %.4g outside the reward range [0,1]: importance weights this large make it unreliable", r.Value))
		}
		out = append(out, r)
	}
	return out
}

// tune returns the grid index minimising the estimated MSE
// (V̂_j − ref)² + Var̂_j/n, where V̂_j = (base + Σ part_j)/n and Σ per-row
// value² is in sq. Ties go to the larger value (less bias).
func (a *acc) tune(c *cfg, ref float64, idx func(j int) (int, float64), m int) int {
	n := float64(a.rowsSeen)
	best, bestMSE := m-1, math.Inf(1)
	for j := m - 1; j >= 0; j-- {
		k, base := idx(j)
		mean := (base + a.total[k]) / n
		v := math.Max(0, a.sq[k]/n-mean*mean)
		mse := (mean-ref)*(mean-ref) + v/n
		if mse < bestMSE {
			best, bestMSE = j, mse
		}
	}
	return best
}

func fmtParam(v float64) string {
	if math.IsInf(v, 1) {
		return "inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// interval fills r's interval from a's resamples, intersected with [0,1].
func (c *cfg) interval(r *Result, a *acc, j int) {
	if a.boot == nil {
		return
	}
	vals := make([]float64, len(a.boot))
	for b, s := range a.boot {
		vals[b] = c.value(r.Estimator, s, j)
	}
	lo, hi := percentiles(vals, c.Level)
	if math.IsNaN(lo) {
		return
	}
	if lo < 0 || hi > 1 {
		r.CIClipped = true
		lo, hi = math.Max(lo, 0), math.Min(hi, 1)
	}
	r.CILow, r.CIHigh = lo, hi
}

// row adds one logged row's bookkeeping (everything but the resamples).
func (a *acc) row(rec *decision.Record, pi, cur []float64, c *cfg) {
	d := &rec.Decision
	k := len(d.Candidates)
	mu := d.Probs
	w := cur[sW]
	missing := 0.0
	uniform := true
	for j := 0; j < k; j++ {
		if mu[j] == 0 {
			missing += pi[j]
		}
		if math.Abs(mu[j]-1/float64(k)) > probSumTol {
			uniform = false
		}
	}
	if missing > 0 {
		a.supportRows++
		a.supportMass += missing
	}
	if !uniform {
		a.nonUniform++
	}
	if a.firstK < 0 {
		a.firstK = k
	} else if k != a.firstK {
		a.kVaries = true
	}
	if rec.RewardSource == decision.RewardDefault {
		a.defaultReward++
	}
	a.rowsSeen++
	a.raw.add(w)
	a.accept.add(cur[sA])
	for j, cl := range c.clips {
		a.clipK[j].add(math.Min(w, cl))
	}
	for j, l := range c.lambdas {
		a.shrK[j].add(shrink(w, l))
	}
	if w > a.maxW {
		a.maxW = w
	}
	if w > 10 {
		a.over10++
	}
	// sq holds Σ(per-row value)² for tuning: for Switch-DR and DR-OS the
	// per-row value is dm + the correction.
	first := c.sw(0)
	for s, v := range cur {
		a.total[s] += v
		if s >= first {
			v += cur[sDM]
		}
		a.sq[s] += v * v
	}
}

func (a *acc) warnings() []string {
	var w []string
	n := float64(a.rowsSeen)
	if a.supportRows > 0 {
		w = append(w, fmt.Sprintf("missing support: on %d of %d rows the target put probability on arms the logger never plays there (propensity 0), %.3g%% of its total mass; replay/ips/clipped-ips/snips ignore that mass (biased) and the DR family covers it only through the reward model",
			a.supportRows, a.rowsSeen, 100*a.supportMass/n))
	}
	if ess := a.raw.ess(); a.raw.s > 0 && ess < math.Max(10, 0.1*n) {
		w = append(w, fmt.Sprintf("low overlap: effective sample size %.1f of %d rows (%.2g%%); importance-weighted estimates rest on few rows", ess, a.rowsSeen, 100*ess/n))
	}
	if a.over10 > 0 {
		w = append(w, fmt.Sprintf("%d of %d rows (%.3g%%) have an importance weight above 10 (max %.4g)", a.over10, a.rowsSeen, 100*float64(a.over10)/n, a.maxW))
	}
	// The mean weight estimates Σ_a π(a|x) over supported arms: 1 when the
	// logger covers the target. Kish's ESS cannot see a constant shortfall.
	if mw := a.raw.s / n; n > 1 {
		sd := math.Sqrt(math.Max(0, a.raw.s2/n-mw*mw))
		if math.Abs(mw-1) > 0.05 && math.Abs(mw-1) > 3*sd/math.Sqrt(n) {
			w = append(w, fmt.Sprintf("mean importance weight %.4g, not 1: the logger does not cover the target or its propensities are wrong", mw))
		}
	}
	if a.defaultReward > 0 {
		w = append(w, fmt.Sprintf("%d of %d rows (%.3g%%) carry a default reward (feedback never arrived); estimates treat it as observed", a.defaultReward, a.rowsSeen, 100*float64(a.defaultReward)/n))
	}
	return w
}

// replayWarnings flags logs that break the replay method's assumptions
// (uniformly random logging over a fixed number of candidates).
func (a *acc) replayWarnings() []string {
	var w []string
	if a.nonUniform > 0 {
		w = append(w, fmt.Sprintf("replay assumes uniformly random logging, but %d of %d rows were logged non-uniformly: the replay value is biased (prefer snips or dr)", a.nonUniform, a.rowsSeen))
	}
	if a.kVaries {
		w = append(w, "replay assumes a fixed number of candidates, but it varies across rows: the replay value over-weights requests with few candidates (prefer snips or dr)")
	}
	return w
}

// poissonCDF[k] is P(Poisson(1) <= k), up to where it rounds to 1.
var poissonCDF = func() []float64 {
	var cdf []float64
	p, c := math.Exp(-1), 0.0
	for k := 1; c < 1-1e-16 && k < 30; k++ {
		c += p
		cdf = append(cdf, c)
		p /= float64(k)
	}
	return cdf
}()

// poissonRow fills counts[b] with the Poisson(1) weight of row i in
// bootstrap resample b, a pure function of (seed, i, b) so that both
// passes agree.
func poissonRow(seed uint64, i int64, counts []float64) {
	h := splitmix(splitmix(seed^0x5eed0b007) ^ uint64(i))
	for b := range counts {
		u := float64(splitmix(h^uint64(b))>>11) / (1 << 53)
		k := 0
		for k < len(poissonCDF) && u >= poissonCDF[k] {
			k++
		}
		counts[b] = float64(k)
	}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// percentiles returns the equal-tailed percentile interval at level from
// bootstrap values; NaN when fewer than half of them are defined.
func percentiles(vals []float64, level float64) (float64, float64) {
	xs := make([]float64, 0, len(vals))
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 || 2*len(xs) < len(vals) {
		return math.NaN(), math.NaN()
	}
	slices.Sort(xs)
	alpha := (1 - level) / 2
	return quantile(xs, alpha), quantile(xs, 1-alpha)
}

// quantile is the linear-interpolation (type 7) quantile of sorted xs.
func quantile(xs []float64, p float64) float64 {
	h := p * float64(len(xs)-1)
	lo := int(math.Floor(h))
	if lo >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	return xs[lo] + (h-float64(lo))*(xs[lo+1]-xs[lo])
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// fitted is what the fit pass learned.
type fitted struct {
	rows   int64
	models []RewardModel   // per fold
	boot   [][]RewardModel // per bootstrap resample and fold
	arms   []string
}

// fitPass validates every row, trains one reward model per fold on the
// other folds' rows (and, for the bootstrap, one per resample and fold on
// the resample's Poisson weights), and collects the arm ids.
//
// With rowBoot false it fits no per-resample models; with rg it feeds every
// row to rg (by bootstrap group and fold).
func fitPass(ctx context.Context, src Source, c *cfg, needModel, rowBoot bool, rg *ridgeGroups) (*fitted, error) {
	ft := &fitted{}
	mk := func() ([]RewardModel, error) {
		ms := make([]RewardModel, c.Folds)
		for k := range ms {
			if ms[k] = c.Model(); ms[k] == nil {
				return nil, fmt.Errorf("reward model factory returned nil")
			}
		}
		return ms, nil
	}
	if needModel {
		var err error
		if ft.models, err = mk(); err != nil {
			return nil, err
		}
		ft.boot = make([][]RewardModel, 0)
		if rowBoot {
			ft.boot = make([][]RewardModel, max(c.Bootstrap, 0))
		}
		for b := range ft.boot {
			if ft.boot[b], err = mk(); err != nil {
				return nil, err
			}
		}
	}
	perFold := make([]int64, c.Folds)
	counts := make([]float64, len(ft.boot))
	arms := map[string]struct{}{}
	var idx int64
	observe := func(ms []RewardModel, f, times int, rec *decision.Record) error {
		for k, m := range ms {
			if k == f && c.Folds > 1 {
				continue
			}
			for range times {
				if err := m.Observe(rec); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := src.Scan(ctx, func(rec *decision.Record) error {
		i := idx
		idx++
		if i&8191 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := checkRecord(rec); err != nil {
			return rowErr(i, rec, err)
		}
		for _, cd := range rec.Decision.Candidates {
			if _, ok := arms[cd.ID]; !ok {
				arms[cd.ID] = struct{}{}
			}
		}
		if !needModel {
			return nil
		}
		f := fold(rec, i, c.Folds)
		perFold[f]++
		if rg != nil {
			rg.register(rec)
			rg.observe(rec, groupOf(c.Seed, i), f)
		}
		if err := observe(ft.models, f, 1, rec); err != nil {
			return rowErr(i, rec, err)
		}
		if len(ft.boot) > 0 {
			poissonRow(c.Seed, i, counts)
		}
		for b, ms := range ft.boot {
			if n := int(counts[b]); n > 0 {
				if err := observe(ms, f, n, rec); err != nil {
					return rowErr(i, rec, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate (fit pass): %w", err)
	}
	if needModel && c.Folds > 1 {
		for f, n := range perFold {
			if n == idx && idx > 0 {
				return nil, fmt.Errorf("evaluate: cross-fitting with %d folds put all %d rows in fold %d, leaving no training rows for it (use Folds 1 on so small a log)", c.Folds, idx, f)
			}
		}
	}
	for k, m := range ft.models {
		if err := m.Fit(); err != nil {
			return nil, fmt.Errorf("evaluate: fit reward model of fold %d: %w", k, err)
		}
	}
	for b, ms := range ft.boot {
		for k, m := range ms {
			if err := m.Fit(); err != nil {
				return nil, fmt.Errorf("evaluate: fit reward model of fold %d in bootstrap resample %d: %w", k, b, err)
			}
		}
	}
	ids := make([]string, 0, len(arms))
	for id := range arms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ft.rows, ft.arms = idx, ids
	return ft, nil
}

// fold assigns a row to a cross-fitting fold by the FNV-1a hash of its
// request id, so that the assignment does not depend on the row order; rows
// without an id go by position.
func fold(rec *decision.Record, i int64, folds int) int {
	if folds <= 1 {
		return 0
	}
	if rec.Request.ID == "" {
		return int(i % int64(folds))
	}
	return int(fnv64a(rec.Request.ID) % uint64(folds))
}

// fnv64a is the 64-bit FNV-1a hash of s (hash/fnv without the allocation).
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// groupRow adds one row to a's per-group sums: cur0 is the row's
// contribution with q̂ = 0, and the terms linear in q̂ = θ·φ go to the
// per-(group, fold, arm) vectors π_a·φ (dm), w·φ (the DR correction),
// 1{w ≤ τ_j}·w·φ (Switch-DR) and shrink_j(w)·φ (DR-OS) of the chosen arm.
func (a *acc) groupRow(c *cfg, rg *ridgeGroups, g, f int, cur0 []float64, rec *decision.Record, pi, phi []float64) error {
	if a.gbase == nil {
		a.gbase = make([]float64, bootGroups*c.width)
	}
	base := a.gbase[g*c.width:][:c.width]
	for s, v := range cur0 {
		base[s] += v
	}
	dim := rg.dim
	blk := dim * (2 + len(c.taus) + len(c.lambdas))
	d := &rec.Decision
	w := pi[d.Chosen] / d.Probs[d.Chosen]
	for j, cd := range d.Candidates {
		arm, ok := rg.arms[cd.ID]
		if !ok {
			return fmt.Errorf("arm %q not seen on the first pass", cd.ID)
		}
		for len(a.gmod) <= arm {
			a.gmod = append(a.gmod, nil)
		}
		if a.gmod[arm] == nil {
			a.gmod[arm] = make([]float64, bootGroups*c.Folds*blk)
		}
		m := a.gmod[arm][(g*c.Folds+f)*blk:][:blk]
		if p := pi[j]; p != 0 {
			axpy(m[:dim], p, phi)
		}
		if j != d.Chosen {
			continue
		}
		axpy(m[dim:2*dim], w, phi)
		for t, tau := range c.taus {
			if w <= tau {
				axpy(m[(2+t)*dim:(3+t)*dim], w, phi)
			}
		}
		for l, lam := range c.lambdas {
			if sw := shrink(w, lam); sw != 0 {
				axpy(m[(2+len(c.taus)+l)*dim:(3+len(c.taus)+l)*dim], sw, phi)
			}
		}
	}
	return nil
}

func axpy(dst []float64, a float64, x []float64) {
	for i, v := range x {
		dst[i] += a * v
	}
}

func dot(x, y []float64) float64 {
	s := 0.0
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// groupResamples fills every accumulator's resamples from its per-group
// sums: resample b weights group g by a Poisson(1) count drawn from
// (Seed, b, g), refits every fold's ridge model on the weighted groups'
// sufficient statistics, and evaluates the sums, which are linear in the
// model's coefficients given the per-group vectors.
func groupResamples(c *cfg, rg *ridgeGroups, tgts []*target) error {
	var accs []*acc
	for _, tg := range tgts {
		accs = append(accs, tg.all)
		names := make([]string, 0, len(tg.segs))
		for s := range tg.segs {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, s := range names {
			accs = append(accs, tg.segs[s])
		}
	}
	theta := make([][][]float64, c.Folds)
	for k := range theta {
		theta[k] = make([][]float64, len(rg.arms))
		for a := range theta[k] {
			theta[k][a] = make([]float64, rg.dim)
		}
	}
	dim := rg.dim
	blk := dim * (2 + len(c.taus) + len(c.lambdas))
	cg := make([]float64, bootGroups)
	for b := 0; b < c.Bootstrap; b++ {
		poissonRow(c.Seed^0x9a0c3e5b, int64(b), cg)
		if err := rg.fit(cg, theta); err != nil {
			return fmt.Errorf("evaluate: bootstrap resample %d: %w", b, err)
		}
		for _, a := range accs {
			s := a.boot[b]
			clear(s)
			if a.gbase == nil {
				continue
			}
			for g, cw := range cg {
				if cw == 0 {
					continue
				}
				axpy(s, cw, a.gbase[g*c.width:][:c.width])
				for arm, st := range a.gmod {
					if st == nil {
						continue
					}
					for f := 0; f < c.Folds; f++ {
						th := theta[f][arm]
						m := st[(g*c.Folds+f)*blk:][:blk]
						s[sDM] += cw * dot(th, m[:dim])
						s[sWRes] -= cw * dot(th, m[dim:2*dim])
						for t := range c.taus {
							s[c.sw(t)] -= cw * dot(th, m[(2+t)*dim:(3+t)*dim])
						}
						for l := range c.lambdas {
							s[c.sh(l)] -= cw * dot(th, m[(2+len(c.taus)+l)*dim:(3+len(c.taus)+l)*dim])
						}
					}
				}
			}
		}
	}
	return nil
}
