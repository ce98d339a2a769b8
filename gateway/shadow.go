package gateway

import (
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// PromotionConfig guards shadow → serving promotion and the automatic
// rollback after it; docs/config.md ("Shadow evaluation and promotion")
// explains the estimate.
type PromotionConfig struct {
	// MinSamples is the number of evaluated requests needed before a
	// guarded promotion; 0 = 500.
	MinSamples int `yaml:"min_samples"`
	// Margin is how far the lower confidence bound of shadow − incumbent
	// must lie above zero (reward units; may be negative for "not worse").
	Margin float64 `yaml:"margin"`
	// Confidence is the two-sided level of the interval in (0,1); 0 = 0.95.
	Confidence float64 `yaml:"confidence"`
	// RollbackGuard: after a promotion, the serving policy is rolled back
	// automatically when the mean reward of the last RollbackWindow
	// requests falls below the pre-promotion incumbent value minus this.
	// 0 = 0.05; 1 effectively disables automatic rollback (rewards are in
	// [0,1]).
	RollbackGuard float64 `yaml:"rollback_guard"`
	// RollbackWindow is the number of post-promotion requests averaged;
	// 0 = 200.
	RollbackWindow int `yaml:"rollback_window"`
	// Floor is the exploration floor (policy.WithFloor epsilon) a promoted
	// shadow serves with when its spec has none, so that every arm keeps a
	// positive serving propensity and the reverse estimate (the demoted
	// policy, now shadow, against the new serving one: the rollback case)
	// stays unbiased. Absent = DefaultPromotionFloor; 0 promotes the policy
	// as it is.
	Floor *float64 `yaml:"floor"`
}

// DefaultPromotionFloor is PromotionConfig.Floor when absent.
const DefaultPromotionFloor = 0.05

// floor returns the exploration floor promotion adds.
func (p *PromotionConfig) floor() float64 {
	if p.Floor == nil {
		return DefaultPromotionFloor
	}
	return *p.Floor
}

func (p *PromotionConfig) fillDefaults() {
	if p.MinSamples == 0 {
		p.MinSamples = 500
	}
	if p.Confidence == 0 {
		p.Confidence = 0.95
	}
	if p.RollbackGuard == 0 {
		p.RollbackGuard = 0.05
	}
	if p.RollbackWindow == 0 {
		p.RollbackWindow = 200
	}
}

func (p *PromotionConfig) validate() error {
	switch {
	case p.MinSamples < 0:
		return fmt.Errorf("promotion.min_samples: %d must be >= 1 (0 = default 500)", p.MinSamples)
	case math.IsNaN(p.Margin) || p.Margin <= -1 || p.Margin >= 1:
		return fmt.Errorf("promotion.margin: %v must lie in (-1, 1) (reward units)", p.Margin)
	case math.IsNaN(p.Confidence) || p.Confidence < 0 || p.Confidence >= 1:
		return fmt.Errorf("promotion.confidence: %v must lie in (0, 1)", p.Confidence)
	case math.IsNaN(p.RollbackGuard) || p.RollbackGuard < 0 || p.RollbackGuard > 1:
		return fmt.Errorf("promotion.rollback_guard: %v must lie in [0, 1]", p.RollbackGuard)
	case p.RollbackWindow < 0:
		return fmt.Errorf("promotion.rollback_window: %d must be >= 1 (0 = default 200)", p.RollbackWindow)
	case p.Floor != nil && !(*p.Floor >= 0 && *p.Floor <= 1):
		return fmt.Errorf("promotion.floor: %v must lie in [0, 1] (absent = default %v, 0 = none)", *p.Floor, DefaultPromotionFloor)
	}
	return nil
}

// validateShadowLearn checks shadow.learn (and that policy.learn is unset:
// the serving policy always learns on-policy).
func (c *Config) validateShadowLearn() error {
	if c.Policy.Learn != "" {
		return fmt.Errorf("policy.learn: %q: only the shadow block takes learn (the serving policy learns from its own choices)", c.Policy.Learn)
	}
	if c.Shadow != nil {
		if _, err := route.ParseShadowLearnMode(c.Shadow.Learn); err != nil {
			return fmt.Errorf("shadow.learn: %w", err)
		}
	}
	return nil
}

// shadowLearn is the core's shadow learning configuration (validated).
func (c *Config) shadowLearn() route.ShadowLearnOpts {
	var o route.ShadowLearnOpts
	if c.Shadow != nil {
		o.Mode, _ = route.ParseShadowLearnMode(c.Shadow.Learn)
	}
	return o
}

// withPromotionFloor returns cand wrapped in an exploration floor of eps
// unless eps is 0 or cand already has a floor. The wrapper shares cand's
// learned state (it is the same policy that goes on learning) and reports
// its name, so the estimate and the logs follow it.
func withPromotionFloor(cand policy.Policy, eps float64, seed uint64) (policy.Policy, error) {
	if eps == 0 {
		return cand, nil
	}
	if _, has := cand.(*policy.Floor); has {
		return cand, nil
	}
	return policy.WithFloor(cand, eps, seed)
}

// OPEEstimate is a running off-policy comparison of a shadow policy with
// the serving (incumbent) policy on the same requests. Per request i with
// realised reward rᵢ, serving propensity pᵢ of the chosen arm and the
// shadow's probability qᵢ of that same arm, the weight is wᵢ = qᵢ/pᵢ:
//
//	incumbent value  V₀ = Σ rᵢ / n                (on-policy mean)
//	shadow value     V₁ = Σ wᵢrᵢ / n              (IPS, as replay's ips)
//	shadow SNIPS        = Σ wᵢrᵢ / Σ wᵢ           (as replay's snips)
//	difference       D  = Σ dᵢ / n,  dᵢ = wᵢrᵢ − rᵢ (paired per request)
//
// These are the estimators of package replay (ips, snips, and the logging
// policy's own mean) computed on the fly; the weights are not clipped, so D
// is unbiased wherever the serving policy gives the shadow's arms support
// (a floor:EPS serving policy keeps every pᵢ ≥ EPS/K).
//
// Interval (Interval names it): D ± z·s_d/√n with s_d the sample standard
// deviation of dᵢ (Welford) and z the normal quantile of the confidence
// level — a normal interval where replay uses a Poisson bootstrap; for a
// mean the two agree asymptotically, and this one needs no resample state
// on the serving path. Its coverage is tested by simulation
// (TestOPEAccCoverage). What it covers: both policies may learn while the
// estimate runs, so dᵢ − E[dᵢ | past] are martingale differences and the
// interval is for the mean over the window of the per-request value
// difference of the policies as they were at each request. For a shadow
// that learns (shadow.learn: weighted) that is its average value along its
// learning path, which under-states the trained shadow while it still
// improves; a frozen shadow is estimated as it is.
//
// The normal approximation fails when a few large weights carry the sum:
// with the ESS = (Σwᵢ)²/Σwᵢ² below max(10, n/10) (replay's "low overlap"
// rule) the status carries a warning and a guarded promotion is refused.
// With a deterministic serving policy pᵢ = 1 and wᵢ ∈ {0,1} for a
// deterministic shadow: V₁ is then the "replay" estimate on agreements,
// biased when the two rarely agree.
type OPEEstimate struct {
	N              int64   `json:"n"`
	ESS            float64 `json:"ess"`
	IncumbentValue float64 `json:"incumbent_value"`
	ShadowValue    float64 `json:"shadow_value"`
	ShadowSNIPS    float64 `json:"shadow_snips"`
	Diff           float64 `json:"diff"`
	CILow          float64 `json:"ci_low"`
	CIHigh         float64 `json:"ci_high"`
}

// IntervalMethod names the interval OPEEstimate reports.
const IntervalMethod = "normal (paired IPS differences)"

// lowOverlap reports whether the weights' ESS is too small for the normal
// interval: replay's low-overlap rule, ESS < max(10, n/10).
func (e *OPEEstimate) lowOverlap() bool {
	return e.N > 0 && e.ESS < math.Max(10, 0.1*float64(e.N))
}

// opeAcc accumulates the sums behind OPEEstimate; the zero value is empty.
// It is not safe for concurrent use (promoter guards it).
type opeAcc struct {
	n                int64
	sumR, sumWR      float64
	sumW, sumW2      float64
	diffMean, diffM2 float64 // Welford on dᵢ
}

func (a *opeAcc) add(r, w float64) {
	a.n++
	a.sumR += r
	a.sumWR += w * r
	a.sumW += w
	a.sumW2 += w * w
	d := w*r - r
	delta := d - a.diffMean
	a.diffMean += delta / float64(a.n)
	a.diffM2 += delta * (d - a.diffMean)
}

// estimate returns the running estimate with a two-sided interval at z.
// With fewer than two samples the interval is infinite.
func (a *opeAcc) estimate(z float64) OPEEstimate {
	e := OPEEstimate{N: a.n, CILow: math.Inf(-1), CIHigh: math.Inf(1)}
	if a.n == 0 {
		return e
	}
	n := float64(a.n)
	e.IncumbentValue = a.sumR / n
	e.ShadowValue = a.sumWR / n
	e.Diff = a.diffMean
	if a.sumW > 0 {
		e.ShadowSNIPS = a.sumWR / a.sumW
		e.ESS = a.sumW * a.sumW / a.sumW2
	}
	if a.n >= 2 {
		half := z * math.Sqrt(a.diffM2/(n-1)/n)
		e.CILow, e.CIHigh = e.Diff-half, e.Diff+half
	}
	return e
}

// ShadowStatus is the body of GET /admin/shadow/status. CILow and CIHigh
// are null while the interval is undefined (fewer than two samples).
type ShadowStatus struct {
	Incumbent      string   `json:"incumbent"`
	Shadow         string   `json:"shadow,omitempty"`
	N              int64    `json:"n"`
	ESS            float64  `json:"ess"`
	IncumbentValue float64  `json:"incumbent_value"`
	ShadowValue    float64  `json:"shadow_value"`
	ShadowSNIPS    float64  `json:"shadow_snips"`
	Diff           float64  `json:"diff"`
	CILow          *float64 `json:"ci_low"`
	CIHigh         *float64 `json:"ci_high"`
	// Interval names the interval's method (IntervalMethod).
	Interval   string  `json:"interval"`
	Margin     float64 `json:"margin"`
	MinSamples int     `json:"min_samples"`
	Confidence float64 `json:"confidence"`
	Eligible   bool    `json:"eligible"`
	Reason     string  `json:"reason"`
	// Previous is the policy a rollback would restore ("" = none).
	Previous string `json:"previous,omitempty"`
	// Guard describes the armed automatic rollback, if any.
	Guard *GuardStatus `json:"guard,omitempty"`
	// Warning says when the estimate is only a replay estimate.
	Warning string `json:"warning,omitempty"`

	est OPEEstimate
}

// GuardStatus is the post-promotion watch of live reward.
type GuardStatus struct {
	Baseline  float64 `json:"baseline"`
	Threshold float64 `json:"threshold"`
	Window    int     `json:"window"`
	Seen      int     `json:"seen"`
	Mean      float64 `json:"mean"`
}

func finite(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}

// promoter keeps the running estimate of the shadow against the serving
// policy, the policy a rollback restores, and the automatic rollback guard.
// Lock order: Server.policyMu before promoter.mu.
type promoter struct {
	cfg PromotionConfig
	z   float64

	mu sync.Mutex
	// serving and shadow identify the pair the estimate is about; a record
	// decided by another pair is ignored and a change of pair resets it.
	serving, shadow policy.Policy
	acc             opeAcc
	certain         int64         // evaluated requests whose serving propensity was 1
	previous        policy.Policy // restored by rollback
	guard           *rollbackGuard
	promotions      uint64 // seeds the promotion floor's coin
}

// nextSeed returns a fresh seed for a promotion floor's coin (deterministic
// per gateway: the n-th promotion gets the same seed on every run).
func (p *promoter) nextSeed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.promotions++
	return 0x6a09e667f3bcc909 ^ p.promotions
}

type rollbackGuard struct {
	baseline, threshold float64
	ring                []float64
	next, seen          int
	sum                 float64
	fired               bool
}

func (g *rollbackGuard) add(r float64) {
	if g.seen == len(g.ring) {
		g.sum -= g.ring[g.next]
	} else {
		g.seen++
	}
	g.ring[g.next] = r
	g.sum += r
	g.next = (g.next + 1) % len(g.ring)
}

func (g *rollbackGuard) mean() float64 {
	if g.seen == 0 {
		return 0
	}
	return g.sum / float64(g.seen)
}

func newPromoter(cfg PromotionConfig) *promoter {
	cfg.fillDefaults() // a Config built in code may skip Load's defaults
	return &promoter{cfg: cfg, z: distuv.UnitNormal.Quantile(1 - (1-cfg.Confidence)/2)}
}

// syncPair resets the estimate when the serving or shadow policy is not the
// pair it was about. Callers hold p.mu.
func (p *promoter) syncPair(serving, shadow policy.Policy) {
	if serving != p.serving || shadow != p.shadow {
		p.serving, p.shadow, p.acc, p.certain = serving, shadow, opeAcc{}, 0
	}
}

// observe adds one finished record. It returns true when the armed
// rollback guard has just fired (the caller rolls back).
func (p *promoter) observe(serving, shadow policy.Policy, rec *decision.Record) bool {
	d := &rec.Decision
	if d.Reason != decision.ReasonPolicy {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncPair(serving, shadow)
	// A request decided before a swap belongs to the old pair.
	if d.Policy != serving.Name() || d.PolicyVersion != policy.VersionOf(serving) {
		return false
	}
	fired := false
	if g := p.guard; g != nil && !g.fired {
		g.add(rec.Reward)
		if g.seen == len(g.ring) && g.mean() < g.threshold {
			g.fired = true
			fired = true
		}
	}
	if shadow == nil || d.Shadow.Policy != shadow.Name() || !d.Shadow.LoggedProbKnown {
		return fired
	}
	pr := d.Prob()
	if !(pr > 0) || math.IsNaN(d.Shadow.LoggedProb) {
		return fired
	}
	p.acc.add(rec.Reward, d.Shadow.LoggedProb/pr)
	if pr >= 1 {
		p.certain++
	}
	return fired
}

// status reports the estimate for the current pair and whether a guarded
// promotion would go ahead.
func (p *promoter) status(serving, shadow policy.Policy) ShadowStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncPair(serving, shadow)
	e := p.acc.estimate(p.z)
	st := ShadowStatus{Incumbent: serving.Name(), N: e.N, ESS: e.ESS, IncumbentValue: e.IncumbentValue,
		ShadowValue: e.ShadowValue, ShadowSNIPS: e.ShadowSNIPS, Diff: e.Diff, CILow: finite(e.CILow), CIHigh: finite(e.CIHigh),
		Interval: IntervalMethod, Margin: p.cfg.Margin, MinSamples: p.cfg.MinSamples, Confidence: p.cfg.Confidence, est: e}
	if p.previous != nil {
		st.Previous = p.previous.Name()
	}
	if g := p.guard; g != nil && !g.fired {
		st.Guard = &GuardStatus{Baseline: g.baseline, Threshold: g.threshold, Window: len(g.ring), Seen: g.seen, Mean: g.mean()}
	}
	switch {
	case shadow == nil:
		st.Reason = "no shadow policy"
	case st.N < int64(p.cfg.MinSamples):
		st.Reason = fmt.Sprintf("%d of %d samples", st.N, p.cfg.MinSamples)
	case e.lowOverlap():
		st.Reason = fmt.Sprintf("low overlap: effective sample size %.1f of %d requests; the interval rests on too few requests", e.ESS, e.N)
	case !(e.CILow > p.cfg.Margin):
		st.Reason = fmt.Sprintf("ci_low %.4f of shadow − incumbent is not above margin %.4f", e.CILow, p.cfg.Margin)
	default:
		st.Eligible = true
		st.Reason = fmt.Sprintf("ci_low %.4f > margin %.4f over %d samples", e.CILow, p.cfg.Margin, st.N)
	}
	if shadow != nil {
		st.Shadow = shadow.Name()
	}
	if e.lowOverlap() {
		st.Warning = fmt.Sprintf("low overlap: effective sample size %.1f of %d requests (the shadow mostly chooses arms the serving policy rarely plays); the normal interval is unreliable", e.ESS, e.N)
	}
	if e.N > 0 && p.certain == e.N {
		if st.Warning != "" {
			st.Warning += "; "
		}
		st.Warning += "every evaluated request had serving propensity 1 (a deterministic serving policy): the shadow value is a replay estimate on agreements, biased when they rarely agree; serve with floor:EPS"
	}
	return st
}

// promoted records a swap: old is kept for rollback and the guard is armed
// against baseline (the incumbent's value before the swap; NaN = unknown,
// no guard). Callers hold Server.policyMu.
func (p *promoter) promoted(old policy.Policy, baseline float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.previous = old
	p.guard = nil
	if !math.IsNaN(baseline) {
		p.guard = &rollbackGuard{baseline: baseline, threshold: baseline - p.cfg.RollbackGuard, ring: make([]float64, p.cfg.RollbackWindow)}
	}
}

// guardStatus reports the guard (fired or not), or nil.
func (p *promoter) guardStatus() *GuardStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g := p.guard; g != nil {
		return &GuardStatus{Baseline: g.baseline, Threshold: g.threshold, Window: len(g.ring), Seen: g.seen, Mean: g.mean()}
	}
	return nil
}

// takePrevious returns the policy to roll back to and forgets it and the
// guard; nil when there is nothing to roll back to.
func (p *promoter) takePrevious() policy.Policy {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.previous
	p.previous, p.guard = nil, nil
	return prev
}

// hasPrevious reports whether there is a policy to roll back to.
func (p *promoter) hasPrevious() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.previous != nil
}

// previousPolicy is the policy a rollback would restore, or nil.
func (p *promoter) previousPolicy() policy.Policy {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.previous
}

// disarm forgets the rollback target and guard (an operator replaced the
// serving policy by hand).
func (p *promoter) disarm() {
	p.mu.Lock()
	p.previous, p.guard = nil, nil
	p.mu.Unlock()
}

// promotionSink feeds the promoter from every finished record before
// passing it on; Complete computes the reward before the sink sees it.
type promotionSink struct {
	s    *Server
	next route.Sink
}

func (ps promotionSink) Log(rec *decision.Record) {
	s := ps.s
	if s.core != nil && s.promo.observe(s.core.Policy(), s.core.ShadowPolicy(), rec) {
		s.autoRollback()
	}
	if ps.next != nil {
		ps.next.Log(rec)
	}
}

// promotionMetrics exports the running estimate and the swap counters.
type promotionMetrics struct {
	promotions *prometheus.CounterVec
	rollbacks  *prometheus.CounterVec
}

func newPromotionMetrics(reg *prometheus.Registry, s *Server) *promotionMetrics {
	m := &promotionMetrics{
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "routelab_promotions_total", Help: "Shadow policies promoted to serving, by kind (guarded, forced).",
		}, []string{"kind"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "routelab_rollbacks_total", Help: "Rollbacks to the previous serving policy, by trigger (manual, auto).",
		}, []string{"trigger"}),
	}
	reg.MustRegister(m.promotions, m.rollbacks)
	stat := func(name, help string, f func(*ShadowStatus) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if s.core == nil {
				return math.NaN()
			}
			st := s.promo.status(s.core.Policy(), s.core.ShadowPolicy())
			return f(&st)
		}))
	}
	stat("routelab_shadow_samples", "Requests in the running shadow-vs-incumbent estimate.", func(st *ShadowStatus) float64 { return float64(st.N) })
	stat("routelab_shadow_ess", "Effective sample size of the shadow's importance weights.", func(st *ShadowStatus) float64 { return st.ESS })
	stat("routelab_shadow_incumbent_value", "On-policy mean reward of the serving policy in the running estimate.", func(st *ShadowStatus) float64 { return st.IncumbentValue })
	stat("routelab_shadow_value", "IPS estimate of the shadow policy's mean reward.", func(st *ShadowStatus) float64 { return st.ShadowValue })
	stat("routelab_shadow_diff", "Estimated shadow − incumbent mean reward.", func(st *ShadowStatus) float64 { return st.Diff })
	stat("routelab_shadow_diff_ci_low", "Lower confidence bound of shadow − incumbent (-Inf below 2 samples).", func(st *ShadowStatus) float64 { return st.est.CILow })
	stat("routelab_shadow_diff_ci_high", "Upper confidence bound of shadow − incumbent (+Inf below 2 samples).", func(st *ShadowStatus) float64 { return st.est.CIHigh })
	stat("routelab_shadow_eligible", "1 when a guarded promotion of the shadow would go ahead.", func(st *ShadowStatus) float64 {
		if st.Eligible {
			return 1
		}
		return 0
	})
	return m
}
