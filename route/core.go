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
	rules     []Rule
	reward    decision.Reward
	sink      Sink
	profiles  *Profiles
	encoder   policy.Encoder
	now       func() time.Time

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
	// Now, optional, stamps records; defaults to time.Now.
	Now func() time.Time
}

// NewCore validates o and builds a Core.
func NewCore(o CoreOpts) (*Core, error) {
	if len(o.Catalogue) == 0 {
		return nil, fmt.Errorf("catalogue: no models")
	}
	seen := map[string]bool{}
	for i, a := range o.Catalogue {
		if a.ID == "" {
			return nil, fmt.Errorf("catalogue[%d]: empty model id", i)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("catalogue[%d]: duplicate model id %q", i, a.ID)
		}
		seen[a.ID] = true
	}
	if o.Policy == nil {
		return nil, fmt.Errorf("policy: none given")
	}
	if err := o.Reward.Validate(); err != nil {
		return nil, err
	}
	c := &Core{
		catalogue: append([]decision.Arm(nil), o.Catalogue...),
		rules:     o.Rules,
		reward:    o.Reward.OrDefault(),
		sink:      o.Sink,
		profiles:  o.Profiles,
		encoder:   o.Encoder,
		now:       o.Now,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.profiles == nil {
		c.profiles = NewProfiles(ProfileOpts{Now: c.now})
	}
	c.SetPolicy(o.Policy)
	c.SetShadow(o.Shadow)
	return c, nil
}

// Catalogue returns the arms the core routes to. Do not modify.
func (c *Core) Catalogue() []decision.Arm { return c.catalogue }

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
		for i := range c.catalogue {
			if c.catalogue[i].ID == req.Forced {
				d.Candidates = append(d.Candidates, c.catalogue[i])
				c.profiles.Fill(d.Candidates)
				d.Probs = append(d.Probs[:0], 1)
				d.Chosen, d.Reason = 0, decision.ReasonForced
				box := c.serving.Load()
				d.Policy, d.PolicyVersion = box.p.Name(), box.version
				return nil
			}
		}
		return fmt.Errorf("forced model %q is not in the catalogue", req.Forced)
	}
	for i := range c.catalogue {
		a := &c.catalogue[i]
		ok := true
		for _, r := range c.rules {
			if !r.Allow(f, a) {
				ok = false
				break
			}
		}
		if ok {
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

// Complete computes the reward of o, updates the serving policy (and the
// shadow policy when it chose the same arm), records the outcome in the
// profiles, and hands the record to the sink. It is the second half of Run.
func (c *Core) Complete(rec *decision.Record) error { return c.Finish(rec, true) }

// Finish is Complete with the policy update optional: with learn false the
// reward is computed and logged but no policy learns from it, and the
// caller owes exactly one Learn for the decision later — the gateway does
// this to wait for delayed feedback instead of counting a request twice.
func (c *Core) Finish(rec *decision.Record, learn bool) error {
	d, o := &rec.Decision, &rec.Outcome
	c.profiles.Observe(o)
	rec.Reward = c.RewardFor(d, o)
	rec.RewardSource = decision.RewardImmediate
	if rec.Time.IsZero() {
		rec.Time = c.now()
	}
	var err error
	if learn && d.Reason == decision.ReasonPolicy {
		err = c.Learn(&rec.Request.Features, d, rec.Reward)
	}
	if c.sink != nil {
		c.sink.Log(rec)
	}
	return err
}

// Learn reports reward for decision d to the serving policy and, when the
// shadow chose the same arm, to the shadow policy. Delayed rewards enter here.
func (c *Core) Learn(f *decision.Features, d *decision.Decision, reward float64) error {
	box := c.serving.Load()
	// Only the policy that made the decision learns from it; after a hot
	// swap, late rewards for the old policy's choices are dropped.
	if box.p.Name() == d.Policy {
		if err := box.p.Update(f, d.Candidates, d.Chosen, reward); err != nil {
			return fmt.Errorf("policy %s update: %w", box.p.Name(), err)
		}
	}
	if sb := c.shadow.Load(); sb != nil && d.Shadow.Policy == sb.p.Name() && d.Shadow.Arm == d.Arm().ID {
		if err := sb.p.Update(f, d.Candidates, d.Chosen, reward); err != nil {
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
