package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

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
// the defaults below.
type Opts struct {
	// Estimators to report, in this order; nil means AllEstimators().
	Estimators []Estimator
	// Clip caps importance weights in clipped IPS; 0 means 10.
	Clip float64
	// Tau is Switch-DR's weight threshold; 0 means 10.
	Tau float64
	// Lambda is DR-OS's shrinkage: w ↦ λw/(w²+λ); 0 means 100.
	Lambda float64
	// Bootstrap is the number of bootstrap resamples for the confidence
	// intervals; 0 means 200, negative means no intervals.
	Bootstrap int
	// Level is the confidence level of the intervals; 0 means 0.95.
	Level float64
	// Seed seeds the bootstrap; the same seed gives the same intervals.
	Seed uint64
	// Buckets bounds the bootstrap's memory: rows are dealt round-robin
	// into this many buckets of running sums, and the bootstrap resamples
	// buckets. With fewer rows than buckets it is the ordinary row
	// bootstrap. 0 means 4096.
	Buckets int
	// Folds is the number of cross-fitting folds of the reward model; a row
	// is scored by a model trained on the other folds. 0 means 2; 1 fits
	// and scores on the same rows (in-sample, optimistic).
	Folds int
	// Model makes one reward model per fold; nil means &Ridge{}.
	Model func() RewardModel
	// Observer, optional, sees every row of the evaluation pass (for
	// exports such as WriteOBP).
	Observer Observer
}

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

// Result is one estimate. Value, CILow and CIHigh are NaN when undefined
// (no interval requested, or the estimator has nothing to average); JSON
// renders NaN as null.
type Result struct {
	Policy    string    `json:"policy"`
	Estimator Estimator `json:"estimator"`
	Value     float64   `json:"value"`
	CILow     float64   `json:"ci_low"`
	CIHigh    float64   `json:"ci_high"`
	// ESS is Kish's effective sample size (Σw)²/Σw² of the weights the
	// estimator uses (clipped for clipped-ips, shrunk for dr-os, replay's
	// acceptances for replay; the number of rows for dm).
	ESS float64 `json:"ess"`
	// N is the number of logged rows used.
	N int64 `json:"n"`
	// MaxWeight and MeanWeight describe the raw importance weights
	// π(a|x)/μ(a|x) of the logged choices; MeanWeight should be near 1
	// when the logger covers the target.
	MaxWeight  float64  `json:"max_weight"`
	MeanWeight float64  `json:"mean_weight"`
	Warnings   []string `json:"warnings,omitempty"`
}

// MarshalJSON renders NaN and infinities as null.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain struct {
		Policy     string    `json:"policy"`
		Estimator  Estimator `json:"estimator"`
		Value      *float64  `json:"value"`
		CILow      *float64  `json:"ci_low"`
		CIHigh     *float64  `json:"ci_high"`
		ESS        *float64  `json:"ess"`
		N          int64     `json:"n"`
		MaxWeight  *float64  `json:"max_weight"`
		MeanWeight *float64  `json:"mean_weight"`
		Warnings   []string  `json:"warnings,omitempty"`
	}
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(plain{r.Policy, r.Estimator, num(r.Value), num(r.CILow), num(r.CIHigh), num(r.ESS), r.N, num(r.MaxWeight), num(r.MeanWeight), r.Warnings})
}

func (o Opts) withDefaults() (Opts, error) {
	if o.Estimators == nil {
		o.Estimators = AllEstimators()
	}
	for _, e := range o.Estimators {
		if !e.valid() {
			return o, fmt.Errorf("estimator %q: unknown", e)
		}
	}
	def := func(name string, v *float64, d float64) error {
		if math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 {
			return fmt.Errorf("option %s: %v must be a finite number >= 0", name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	if err := def("clip", &o.Clip, 10); err != nil {
		return o, err
	}
	if err := def("tau", &o.Tau, 10); err != nil {
		return o, err
	}
	if err := def("lambda", &o.Lambda, 100); err != nil {
		return o, err
	}
	if err := def("level", &o.Level, 0.95); err != nil {
		return o, err
	}
	if o.Level >= 1 {
		return o, fmt.Errorf("option level: %v must be in (0,1)", o.Level)
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = 200
	}
	if o.Buckets < 0 {
		return o, fmt.Errorf("option buckets: %d must be >= 0", o.Buckets)
	}
	if o.Buckets == 0 {
		o.Buckets = 4096
	}
	if o.Folds < 0 {
		return o, fmt.Errorf("option folds: %d must be >= 0", o.Folds)
	}
	if o.Folds == 0 {
		o.Folds = 2
	}
	if o.Model == nil {
		o.Model = func() RewardModel { return &Ridge{} }
	}
	return o, nil
}

// Running sums kept per bucket and target; every estimator is a ratio of
// these, so a bootstrap resample of buckets recomputes all of them.
const (
	sN     = iota // rows
	sWR           // w·r
	sW            // w
	sCR           // min(w, clip)·r
	sDM           // Σ_a π(a|x) q̂(x,a)
	sWRes         // w·(r − q̂(x,a))
	sSwRes        // w·(r − q̂)·1{w ≤ τ}
	sShRes        // ŵ·(r − q̂), ŵ = λw/(w²+λ)
	sAR           // replay acceptance·r
	sA            // replay acceptance
	nStats
)

type sums [nStats]float64

// value computes estimator e from sums s; NaN when undefined.
func value(e Estimator, s *sums) float64 {
	n := s[sN]
	if n == 0 {
		return math.NaN()
	}
	switch e {
	case Replay:
		if s[sA] == 0 {
			return math.NaN()
		}
		return s[sAR] / s[sA]
	case IPS:
		return s[sWR] / n
	case ClippedIPS:
		return s[sCR] / n
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
		return (s[sDM] + s[sSwRes]) / n
	case DROS:
		return (s[sDM] + s[sShRes]) / n
	}
	return math.NaN()
}

// uses reports whether estimator e reads sum k.
func uses(e Estimator, k int) bool {
	switch k {
	case sN:
		return true
	case sWR:
		return e == IPS || e == SNIPS
	case sW:
		return e == SNIPS || e == SNDR
	case sCR:
		return e == ClippedIPS
	case sDM:
		return e.NeedsModel()
	case sWRes:
		return e == DR || e == SNDR
	case sSwRes:
		return e == SwitchDR
	case sShRes:
		return e == DROS
	case sAR, sA:
		return e == Replay
	}
	return false
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

// acc is one target's evaluation state.
type acc struct {
	name    string
	p       policy.Policy
	buckets []sums
	total   sums

	raw, clipped, shrunk, accept kish
	maxW                         float64

	supportRows             int64   // rows where the target put mass on μ=0 arms
	supportMass             float64 // Σ over rows of that mass
	nonUniform              int64   // rows whose logger was not uniform (replay's assumption)
	firstK                  int
	kVaries                 bool
	defaultReward, rowsSeen int64
}

// Evaluate estimates the value of every target on the logged rows of src
// with the estimators of o, and returns one Result per target and
// estimator (targets outer, estimators inner, in the given orders).
//
// Targets are evaluated frozen: Evaluate calls their Select on each logged
// request and candidate set to get π(·|x), and never Update, so a learning
// policy is evaluated as it stands (its learned state is not changed, though
// a randomised policy's generator advances). A randomised Select that
// reports the one-hot of an internal draw (Thompson with one draw) gives an
// unbiased but noisier estimate than exact probabilities would.
//
// Every row is validated (see ErrMissingPropensity and its siblings); the
// first invalid row stops the evaluation with an error naming it.
func Evaluate(ctx context.Context, src Source, targets []Target, o Opts) ([]Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("evaluate: no target policy")
	}
	accs := make([]*acc, len(targets))
	for i, t := range targets {
		if t.Policy == nil {
			return nil, fmt.Errorf("target %d (%q): nil policy", i, t.Name)
		}
		name := t.Name
		if name == "" {
			name = t.Policy.Name()
		}
		accs[i] = &acc{name: name, p: t.Policy, buckets: make([]sums, o.Buckets), firstK: -1}
	}
	needModel := false
	for _, e := range o.Estimators {
		needModel = needModel || e.NeedsModel()
	}

	// Pass 1 (only when a model must be fitted or an observer wants the arm
	// list): validate, fit the per-fold reward models, collect arm ids.
	var models []RewardModel
	var armIDs []string
	var rows1 int64 = -1
	if needModel || o.Observer != nil {
		rows1, models, armIDs, err = fitPass(ctx, src, o, needModel)
		if err != nil {
			return nil, err
		}
		if o.Observer != nil {
			if err := o.Observer.Start(armIDs); err != nil {
				return nil, fmt.Errorf("observer start: %w", err)
			}
		}
	}

	// Pass 2: score every row under every target.
	var (
		idx  int64
		q    []float64
		pi   []float64
		view RowView
	)
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
		if needModel {
			m := models[fold(rec, i, o.Folds)]
			if err := m.Predict(rec, q); err != nil {
				return rowErr(i, rec, err)
			}
			for j := range q {
				if math.IsNaN(q[j]) || math.IsInf(q[j], 0) {
					return rowErr(i, rec, fmt.Errorf("reward model predicted %v for arm %q", q[j], rec.Decision.Candidates[j].ID))
				}
			}
		} else {
			clear(q)
		}
		b := int(i % int64(o.Buckets))
		for t, a := range accs {
			if err := a.row(ctx, rec, pi, q, b, &o); err != nil {
				return rowErr(i, rec, err)
			}
			if o.Observer != nil {
				view = RowView{Target: t, Name: a.name, Index: i, Record: rec, Pi: pi, Q: q}
				if err := o.Observer.Observe(&view); err != nil {
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

	boots := bootstrap(accs, idx, &o)
	var out []Result
	for t, a := range accs {
		common := a.warnings()
		for e, est := range o.Estimators {
			r := Result{
				Policy: a.name, Estimator: est, Value: value(est, &a.total),
				CILow: math.NaN(), CIHigh: math.NaN(), N: idx,
				MaxWeight: a.maxW, MeanWeight: a.raw.s / float64(idx),
			}
			switch est {
			case Replay:
				r.ESS = a.accept.ess()
			case ClippedIPS:
				r.ESS = a.clipped.ess()
			case DROS:
				r.ESS = a.shrunk.ess()
			case DM:
				r.ESS = float64(idx)
			default:
				r.ESS = a.raw.ess()
			}
			if boots != nil {
				r.CILow, r.CIHigh = percentiles(boots[t][e], o.Level)
			}
			r.Warnings = append(r.Warnings, common...)
			if est == Replay {
				r.Warnings = append(r.Warnings, a.replayWarnings()...)
			}
			if math.IsNaN(r.Value) {
				r.Warnings = append(r.Warnings, "undefined: no logged choice has positive target probability")
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// fitPass validates every row, trains one reward model per fold on the
// other folds' rows, and collects the arm ids.
func fitPass(ctx context.Context, src Source, o Opts, needModel bool) (int64, []RewardModel, []string, error) {
	var models []RewardModel
	if needModel {
		models = make([]RewardModel, o.Folds)
		for k := range models {
			if models[k] = o.Model(); models[k] == nil {
				return 0, nil, nil, fmt.Errorf("reward model factory returned nil")
			}
		}
	}
	perFold := make([]int64, o.Folds)
	arms := map[string]struct{}{}
	var idx int64
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
		for _, c := range rec.Decision.Candidates {
			if _, ok := arms[c.ID]; !ok {
				arms[c.ID] = struct{}{}
			}
		}
		if !needModel {
			return nil
		}
		f := fold(rec, i, o.Folds)
		perFold[f]++
		for k, m := range models {
			if k == f && o.Folds > 1 {
				continue
			}
			if err := m.Observe(rec); err != nil {
				return rowErr(i, rec, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, nil, fmt.Errorf("evaluate (fit pass): %w", err)
	}
	if needModel && o.Folds > 1 {
		for f, n := range perFold {
			if n == idx && idx > 0 {
				return 0, nil, nil, fmt.Errorf("evaluate: cross-fitting with %d folds put all %d rows in fold %d, leaving no training rows for it (use Folds 1 on so small a log)", o.Folds, idx, f)
			}
		}
	}
	for k, m := range models {
		if err := m.Fit(); err != nil {
			return 0, nil, nil, fmt.Errorf("evaluate: fit reward model of fold %d: %w", k, err)
		}
	}
	ids := make([]string, 0, len(arms))
	for id := range arms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return idx, models, ids, nil
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

// row adds one logged row under this target.
func (a *acc) row(ctx context.Context, rec *decision.Record, pi, q []float64, b int, o *Opts) error {
	d := &rec.Decision
	k := len(d.Candidates)
	if _, err := a.p.Select(ctx, &rec.Request.Features, d.Candidates, pi); err != nil {
		return fmt.Errorf("%w: %s select: %w", ErrTarget, a.name, err)
	}
	if err := checkProbs(pi[:k]); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTarget, a.name, err)
	}
	mu := d.Probs
	c := d.Chosen
	r := rec.Reward
	w := pi[c] / mu[c]
	dm := 0.0
	missing := 0.0
	uniform := true
	for j := 0; j < k; j++ {
		dm += pi[j] * q[j]
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

	res := r - q[c]
	cw := math.Min(w, o.Clip)
	sw := o.Lambda * w / (w*w + o.Lambda)
	swRes := 0.0
	if w <= o.Tau {
		swRes = w * res
	}
	take := pi[c] // Li et al.: accepted with the target's probability of the logged choice
	a.raw.add(w)
	a.clipped.add(cw)
	a.shrunk.add(sw)
	a.accept.add(take)
	if w > a.maxW {
		a.maxW = w
	}
	s := &a.buckets[b]
	s[sN]++
	s[sWR] += w * r
	s[sW] += w
	s[sCR] += cw * r
	s[sDM] += dm
	s[sWRes] += w * res
	s[sSwRes] += swRes
	s[sShRes] += sw * res
	s[sAR] += take * r
	s[sA] += take
	return nil
}

func (a *acc) warnings() []string {
	var w []string
	n := float64(a.rowsSeen)
	if a.supportRows > 0 {
		w = append(w, fmt.Sprintf("missing support: on %d of %d rows the target put probability on arms the logger never plays there (propensity 0), %.3g%% of its total mass; replay/ips/clipped-ips/snips ignore that mass (biased) and the DR family covers it only through the reward model",
			a.supportRows, a.rowsSeen, 100*a.supportMass/n))
	}
	if ess := a.raw.ess(); a.raw.s > 0 && ess < math.Max(10, 0.01*n) {
		w = append(w, fmt.Sprintf("low overlap: effective sample size %.1f of %d rows; importance-weighted estimates rest on few rows", ess, a.rowsSeen))
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

// bootstrap resamples the non-empty buckets with replacement (the same
// draws for every target, so comparisons between targets are paired) and
// returns, per target and estimator, the resampled values; nil when no
// intervals were asked for.
func bootstrap(accs []*acc, rows int64, o *Opts) [][][]float64 {
	for _, a := range accs {
		for b := range a.buckets {
			for s := range a.total {
				a.total[s] += a.buckets[b][s]
			}
		}
	}
	if o.Bootstrap < 0 {
		return nil
	}
	nb := o.Buckets
	if rows < int64(nb) {
		nb = int(rows)
	}
	out := make([][][]float64, len(accs))
	for t := range accs {
		out[t] = make([][]float64, len(o.Estimators))
		for e := range o.Estimators {
			out[t][e] = make([]float64, o.Bootstrap)
		}
	}
	// Only the sums the requested estimators read are resampled.
	var need []int
	for k := 0; k < nStats; k++ {
		for _, e := range o.Estimators {
			if uses(e, k) {
				need = append(need, k)
				break
			}
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed0b007))
	counts := make([]float64, nb)
	for b := 0; b < o.Bootstrap; b++ {
		clear(counts)
		for j := 0; j < nb; j++ {
			counts[rng.IntN(nb)]++
		}
		for t, a := range accs {
			var s sums
			for j, c := range counts {
				if c == 0 {
					continue
				}
				bs := &a.buckets[j]
				for _, k := range need {
					s[k] += c * bs[k]
				}
			}
			for e, est := range o.Estimators {
				out[t][e][b] = value(est, &s)
			}
		}
	}
	return out
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
