package route

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// Rule is one step of the rule filter run before the policy: an arm that a
// rule rejects is not a candidate for this request.
type Rule interface {
	// Name appears in the error when every arm is filtered out.
	Name() string
	Allow(f *decision.Features, a *decision.Arm) bool
}

// Advisory is implemented by rules that describe an arm's momentary health
// (circuit breakers, health checks) rather than whether a request may use
// it. Routing and Check apply an advisory rule like any other; a forced
// arm that only advisory rules reject is still decided, and the actor's
// fallback chain (which checks every fallback target with Check) deals with
// it.
type Advisory interface {
	Rule
	Advisory() bool
}

// ContextWindowRule rejects arms whose context window cannot hold the
// prompt plus Reserve completion tokens. Arms with ContextWindow 0 fit all.
type ContextWindowRule struct{ Reserve int }

func (ContextWindowRule) Name() string { return "context_window" }

func (r ContextWindowRule) Allow(f *decision.Features, a *decision.Arm) bool {
	return a.ContextWindow == 0 || f.PromptTokens+r.Reserve <= a.ContextWindow
}

// RuleFunc adapts a function to Rule.
type RuleFunc struct {
	RuleName string
	Fn       func(f *decision.Features, a *decision.Arm) bool
}

func (r RuleFunc) Name() string                                     { return r.RuleName }
func (r RuleFunc) Allow(f *decision.Features, a *decision.Arm) bool { return r.Fn(f, a) }

// ErrNoCandidates is returned (wrapped, naming the rules) when the rule
// filter leaves nothing to choose from.
var ErrNoCandidates = errors.New("no candidate model left after the rule filter")

// ErrRuleRejected is wrapped by every *RuleError.
var ErrRuleRejected = errors.New("rejected by a rule")

// ErrUnknownArm is returned (wrapped, naming the id) for a model id that is
// not in the catalogue.
var ErrUnknownArm = errors.New("not in the catalogue")

// RuleError says which rule rejected which arm for a request. It wraps
// ErrRuleRejected.
type RuleError struct {
	Rule string // the rejecting rule's Name()
	Arm  string // the rejected arm's ID
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("model %q rejected by rule %s", e.Arm, e.Rule)
}

func (e *RuleError) Unwrap() error { return ErrRuleRejected }

// Sink receives finished records. Log must not block the caller on I/O and
// must not retain rec after it returns.
type Sink interface {
	Log(rec *decision.Record)
}

// Actor carries out a decision: calls a provider, or a simulated one. It
// fills o (whose Attempts slice it may reuse) and returns an error only when
// it could not act at all (the outcome then is a failure anyway).
type Actor interface {
	Act(ctx context.Context, req *decision.Request, d *decision.Decision, o *decision.Outcome) error
}

// Core runs the one decision path shared by the simulator, the replayer and
// the gateway: rule filter → Select → act → outcome → reward → Update → log.
// The serving and shadow policies can be swapped atomically while it runs.
// Core is safe for concurrent use once built.
type Core struct {
	catalogue []decision.Arm
	index     map[string]int // arm id → catalogue index
	rules     []Rule
	reward    decision.Reward
	sink      Sink
	profiles  *Profiles
	encoder   policy.Encoder
	now       func() time.Time
	pending   *pendingStore
	deferOn   bool
	learn     ShadowLearnOpts
	learnSeq  atomic.Uint64 // draws of the weighted shadow update's coin

	serving atomic.Pointer[policyBox]
	shadow  atomic.Pointer[policyBox]
}

type policyBox struct {
	p       policy.Policy
	version string
}

// CoreOpts configures NewCore.
type CoreOpts struct {
	// Catalogue is every arm the core may route to; IDs must be unique.
	Catalogue []decision.Arm
	Policy    policy.Policy
	// Shadow, optional, runs beside Policy on every routed request.
	Shadow policy.Policy
	Rules  []Rule
	// Reward zero value means DefaultReward().
	Reward decision.Reward
	// Sink, optional, receives every finished record.
	Sink Sink
	// Profiles, optional, tracks live arm profiles and fills them into the
	// candidates before Select. NewCore makes one when nil.
	Profiles *Profiles
	// Encoder, optional, fills Features.Vector before Select (contextual
	// policies need it).
	Encoder policy.Encoder
	// Now, optional, stamps records and ages pending decisions; defaults
	// to time.Now.
	Now func() time.Time
	// Pending, optional, keeps finished decisions for delayed feedback
	// (Feedback) and may defer policy updates until it arrives. The zero
	// value keeps nothing and learns at completion.
	Pending PendingOpts
	// ShadowLearn says how the shadow policy learns; the zero value is
	// importance-weighted learning from every routed request.
	ShadowLearn ShadowLearnOpts
}

// NewCore validates o and builds a Core.
func NewCore(o CoreOpts) (*Core, error) {
	if len(o.Catalogue) == 0 {
		return nil, fmt.Errorf("catalogue: no models")
	}
	index := make(map[string]int, len(o.Catalogue))
	for i, a := range o.Catalogue {
		if a.ID == "" {
			return nil, fmt.Errorf("catalogue[%d]: empty model id", i)
		}
		if _, dup := index[a.ID]; dup {
			return nil, fmt.Errorf("catalogue[%d]: duplicate model id %q", i, a.ID)
		}
		index[a.ID] = i
	}
	if o.Pending.MaxEntries < 0 {
		return nil, fmt.Errorf("pending max entries: %d must be >= 0", o.Pending.MaxEntries)
	}
	if o.Pending.MaxBytes < 0 {
		return nil, fmt.Errorf("pending max bytes: %d must be >= 0", o.Pending.MaxBytes)
	}
	if o.Pending.TTL < 0 {
		return nil, fmt.Errorf("pending ttl: %v must be >= 0", o.Pending.TTL)
	}
	if o.Policy == nil {
		return nil, fmt.Errorf("policy: none given")
	}
	if err := o.ShadowLearn.validate(); err != nil {
		return nil, err
	}
	if err := o.Reward.Validate(); err != nil {
		return nil, err
	}
	c := &Core{
		catalogue: append([]decision.Arm(nil), o.Catalogue...),
		index:     index,
		rules:     o.Rules,
		reward:    o.Reward.OrDefault(),
		sink:      o.Sink,
		profiles:  o.Profiles,
		encoder:   o.Encoder,
		now:       o.Now,
		learn:     o.ShadowLearn,
	}
	if c.learn.Mode == "" {
		c.learn.Mode = ShadowWeighted
	}
	if c.learn.MaxWeight == 0 {
		c.learn.MaxWeight = DefaultShadowMaxWeight
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.profiles == nil {
		c.profiles = NewProfiles(ProfileOpts{Now: c.now})
	}
	ttl := o.Pending.TTL
	if ttl == 0 {
		ttl = DefaultPendingTTL
	}
	c.pending = newPendingStore(ttl, o.Pending.MaxEntries, o.Pending.MaxBytes, c.expire, o.Pending.Backend)
	c.pending.catalogue, c.pending.index = c.catalogue, c.index
	c.deferOn = o.Pending.Defer && o.Pending.MaxEntries > 0
	c.SetPolicy(o.Policy)
	c.SetShadow(o.Shadow)
	return c, nil
}

// Catalogue returns the arms the core routes to. Do not modify.
func (c *Core) Catalogue() []decision.Arm { return c.catalogue }

// Arm returns the catalogue arm with this id, or nil. Do not modify.
func (c *Core) Arm(id string) *decision.Arm {
	if i, ok := c.index[id]; ok {
		return &c.catalogue[i]
	}
	return nil
}

// Check applies the rules to the catalogue arm id for a request with
// features f: nil when every rule allows it, a *RuleError (wrapping
// ErrRuleRejected) naming the first rule that rejects it, or an error
// wrapping ErrUnknownArm. Decide uses it for forced models; the gateway
// uses it for fallback targets, so every model a request reaches has
// passed the same rules.
func (c *Core) Check(id string, f *decision.Features) error { return c.check(id, f, false) }

// check is Check, skipping the Advisory rules when forced.
func (c *Core) check(id string, f *decision.Features, forced bool) error {
	i, ok := c.index[id]
	if !ok {
		return fmt.Errorf("model %q is %w", id, ErrUnknownArm)
	}
	a := &c.catalogue[i]
	for _, r := range c.rules {
		if forced {
			if adv, ok := r.(Advisory); ok && adv.Advisory() {
				continue
			}
		}
		if !r.Allow(f, a) {
			return &RuleError{Rule: r.Name(), Arm: id}
		}
	}
	return nil
}

// rejecting returns the index of the first rule rejecting a, or -1.
func (c *Core) rejecting(f *decision.Features, a *decision.Arm) int {
	for i, r := range c.rules {
		if !r.Allow(f, a) {
			return i
		}
	}
	return -1
}

// Reward returns the reward function in force.
func (c *Core) Reward() decision.Reward { return c.reward }

// Profiles returns the live model profile library.
func (c *Core) Profiles() *Profiles { return c.profiles }

// Policy returns the serving policy.
func (c *Core) Policy() policy.Policy { return c.serving.Load().p }

// SetPolicy atomically replaces the serving policy; requests already past
// Select finish with the old one.
func (c *Core) SetPolicy(p policy.Policy) {
	c.serving.Store(&policyBox{p: p, version: policy.VersionOf(p)})
}

// ShadowPolicy returns the shadow policy, or nil.
func (c *Core) ShadowPolicy() policy.Policy {
	if b := c.shadow.Load(); b != nil {
		return b.p
	}
	return nil
}

// SetShadow atomically replaces the shadow policy; nil removes it.
func (c *Core) SetShadow(p policy.Policy) {
	if p == nil {
		c.shadow.Store(nil)
		return
	}
	c.shadow.Store(&policyBox{p: p, version: policy.VersionOf(p)})
}

// Decide runs the rule filter and the policy (and the shadow policy) and
// fills d, reusing its slices. It is the first half of Run, for callers —
// the gateway — that act between deciding and completing.
func (c *Core) Decide(ctx context.Context, req *decision.Request, d *decision.Decision) error {
	f := &req.Features
	if c.encoder != nil {
		f.Vector = c.encoder.Encode(f, f.Vector[:0])
	}
	d.Candidates = d.Candidates[:0]
	d.Shadow = decision.Shadow{}
	if req.Forced != "" {
		if err := c.check(req.Forced, f, true); err != nil {
			return fmt.Errorf("forced %w", err)
		}
		d.Candidates = append(d.Candidates, c.catalogue[c.index[req.Forced]])
		c.profiles.Fill(d.Candidates)
		d.Probs = append(d.Probs[:0], 1)
		d.Chosen, d.Reason = 0, decision.ReasonForced
		box := c.serving.Load()
		d.Policy, d.PolicyVersion = box.p.Name(), box.version
		return nil
	}
	for i := range c.catalogue {
		if a := &c.catalogue[i]; c.rejecting(f, a) < 0 {
			d.Candidates = append(d.Candidates, *a)
		}
	}
	if len(d.Candidates) == 0 {
		return c.explainEmpty(f)
	}
	c.profiles.Fill(d.Candidates)
	d.Probs = grow(d.Probs, len(d.Candidates))
	box := c.serving.Load()
	chosen, err := box.p.Select(ctx, f, d.Candidates, d.Probs)
	if err != nil {
		return fmt.Errorf("policy %s select: %w", box.p.Name(), err)
	}
	if chosen < 0 || chosen >= len(d.Candidates) {
		return fmt.Errorf("policy %s select: chose %d of %d candidates", box.p.Name(), chosen, len(d.Candidates))
	}
	d.Chosen, d.Reason = chosen, decision.ReasonPolicy
	d.Policy, d.PolicyVersion = box.p.Name(), box.version
	if sb := c.shadow.Load(); sb != nil {
		// The shadow's propensities go to scratch space past the serving ones.
		k := len(d.Candidates)
		d.Probs = growKeep(d.Probs, 2*k)
		sp := d.Probs[k : 2*k]
		sc, err := sb.p.Select(ctx, f, d.Candidates, sp)
		if err == nil && sc >= 0 && sc < k {
			d.Shadow = decision.Shadow{Policy: sb.p.Name(), Arm: d.Candidates[sc].ID, Prob: sp[sc], LoggedProb: sp[chosen], LoggedProbKnown: true}
		}
		d.Probs = d.Probs[:k]
	}
	return nil
}

func (c *Core) explainEmpty(f *decision.Features) error {
	var why []string
	for _, r := range c.rules {
		n := 0
		for i := range c.catalogue {
			if !r.Allow(f, &c.catalogue[i]) {
				n++
			}
		}
		if n > 0 {
			why = append(why, fmt.Sprintf("%s rejected %d", r.Name(), n))
		}
	}
	return fmt.Errorf("%w (%d models; %s)", ErrNoCandidates, len(c.catalogue), strings.Join(why, ", "))
}

// Complete computes the reward of the record's outcome, records the outcome
// in the profiles, reports the request's realised cost to a serving policy
// that enforces a spend budget (policy.SpendObserver), updates the serving
// policy and the shadow policy (Learn), hands the record to the sink and,
// when the pending store is on, keeps the decision for delayed feedback.
// It is the second half of Run.
//
// Forced decisions never update a policy. With PendingOpts.Defer, a routed,
// successful answer of unknown quality does not update the policy now: its
// update waits for Feedback, or, when none comes within the TTL (or before
// Flush), is credited the immediate reward — exactly once either way.
// Requests without an ID are never kept nor deferred.
func (c *Core) Complete(rec *decision.Record) error {
	d, o := &rec.Decision, &rec.Outcome
	c.profiles.Observe(o)
	rec.Reward = c.RewardFor(d, o)
	rec.RewardSource = decision.RewardImmediate
	if rec.Time.IsZero() {
		rec.Time = c.now()
	}
	routed := d.Reason == decision.ReasonPolicy
	box := c.serving.Load()
	if so, ok := box.p.(policy.SpendObserver); ok && d.Chosen >= 0 && d.Chosen < len(d.Candidates) {
		// Spend is observed whoever chose the model (forced requests cost
		// the tenant too), by the policy serving now.
		so.ObserveSpend(&rec.Request.Features, d.Arm().ID, routed && box.p.Name() == d.Policy, o.Cost)
	}
	keep := rec.Request.ID != "" // feedback finds decisions by request id
	deferred := keep && routed && c.deferOn && o.Status == decision.StatusOK && !o.QualityKnown
	var err error
	if routed && !deferred {
		err = c.Learn(&rec.Request.Features, d, rec.Reward)
	}
	if c.sink != nil {
		c.sink.Log(rec)
	}
	if keep {
		c.pending.put(rec, c.now(), deferred)
	}
	return err
}

// FeedbackResult is what Core.Feedback did with a rating.
type FeedbackResult struct {
	// Model is the arm that answered the request.
	Model string
	// Reward is the reward the rating amounts to for the decision.
	Reward float64
	// Learned is true when the policy learned from this rating: the
	// request's update had been deferred for it. A request whose policy
	// learned at completion is not counted twice.
	Learned bool
}

// Feedback applies a delayed rating of request id: exactly one of quality
// (the answer's quality in [0,1], turned into a reward by the core's reward
// function and fed to the model's quality profile) or reward (in [0,1],
// used as is). The decision leaves the pending store: a request is rated
// once. It returns an error wrapping ErrUnknownRequest when the core does
// not hold id; when the deferred policy update fails, the result (Learned
// false) comes with the update's error.
func (c *Core) Feedback(id string, quality, reward *float64) (FeedbackResult, error) {
	switch {
	case (quality == nil) == (reward == nil):
		return FeedbackResult{}, fmt.Errorf("feedback for %q: give exactly one of quality or reward", id)
	case quality != nil && !unit(*quality):
		return FeedbackResult{}, fmt.Errorf("feedback for %q: quality %v outside [0,1]", id, *quality)
	case reward != nil && !unit(*reward):
		return FeedbackResult{}, fmt.Errorf("feedback for %q: reward %v outside [0,1]", id, *reward)
	}
	h := c.pending.take(id, c.now())
	if h == nil {
		return FeedbackResult{}, fmt.Errorf("request %q: %w", id, ErrUnknownRequest)
	}
	res := FeedbackResult{Model: h.outcome.Arm}
	if reward != nil {
		res.Reward = *reward
	} else {
		o := h.outcome
		o.Quality, o.QualityKnown = *quality, true
		res.Reward = c.RewardFor(&h.decision, &o)
		c.profiles.ObserveQuality(o.Arm, *quality)
	}
	if h.deferred {
		if err := c.Learn(&h.features, &h.decision, res.Reward); err != nil {
			return res, fmt.Errorf("delayed reward update: %w", err)
		}
		res.Learned = true
	}
	return res, nil
}

func unit(v float64) bool { return v >= 0 && v <= 1 } // false for NaN

// expire credits a deferred decision that got no feedback in time with its
// immediate reward.
func (c *Core) expire(h *held) {
	if err := c.Learn(&h.features, &h.decision, h.reward); err != nil {
		c.pending.updateErrors.Add(1)
	}
}

// Flush credits every decision still waiting for feedback with its
// immediate reward and empties the pending store: call it at shutdown so
// that no deferred update is lost.
func (c *Core) Flush() { c.pending.flush() }

// PendingStats returns the pending store's counters.
func (c *Core) PendingStats() PendingStats { return c.pending.stats() }

// Learn reports reward for decision d to the serving policy and to the
// shadow policy as ShadowLearnOpts.Mode says (by default importance-weighted,
// from every routed decision). Delayed rewards enter here.
func (c *Core) Learn(f *decision.Features, d *decision.Decision, reward float64) error {
	box := c.serving.Load()
	// Only the policy that made the decision learns from it; after a hot
	// swap, late rewards for the old policy's choices are dropped.
	if box.p.Name() == d.Policy {
		if err := box.p.Update(f, d.Candidates, d.Chosen, reward); err != nil {
			return fmt.Errorf("policy %s update: %w", box.p.Name(), err)
		}
	}
	if sb := c.shadow.Load(); sb != nil && d.Shadow.Policy == sb.p.Name() {
		if err := c.learnShadow(sb.p, f, d, reward); err != nil {
			return fmt.Errorf("shadow policy %s update: %w", sb.p.Name(), err)
		}
	}
	return nil
}

// RewardFor is the reward credited to the chosen arm: the outcome's reward
// when the chosen arm answered, and a failure's reward (with the chosen
// arm's own latency) when a fallback had to answer instead.
func (c *Core) RewardFor(d *decision.Decision, o *decision.Outcome) float64 {
	return c.reward.ForDecision(d, o)
}

// Run takes req through the whole decision path with actor and fills rec,
// reusing its slices: with a reused Record, Run does not allocate.
func (c *Core) Run(ctx context.Context, req *decision.Request, actor Actor, rec *decision.Record) error {
	rec.Request = *req
	rec.Time = time.Time{}
	if err := c.Decide(ctx, &rec.Request, &rec.Decision); err != nil {
		return err
	}
	o := &rec.Outcome
	attempts := o.Attempts[:0]
	*o = decision.Outcome{Attempts: attempts}
	if err := actor.Act(ctx, &rec.Request, &rec.Decision, o); err != nil && !o.Status.Failed() {
		o.Status = decision.StatusError
	}
	return c.Complete(rec)
}

// growKeep is grow that keeps the existing elements.
func growKeep(s []float64, n int) []float64 {
	if cap(s) < n {
		return append(s, make([]float64, n-len(s))...)
	}
	return s[:n]
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}
