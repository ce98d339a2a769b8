package route_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// events is a shared, ordered trace of what the core called.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) reset() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.log
	e.log = nil
	return out
}

// fixed is a test policy that always picks the candidate named pick (or
// the first), reports propensity 1 for it, and traces its calls.
type fixed struct {
	name    string
	pick    string
	ev      *events
	mu      sync.Mutex
	updates []string
	rewards []float64
	vectors [][]float64
}

func (p *fixed) Name() string { return p.name }

func (p *fixed) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if p.ev != nil {
		p.ev.add("select:" + p.name)
	}
	p.mu.Lock()
	p.vectors = append(p.vectors, append([]float64(nil), f.Vector...))
	p.mu.Unlock()
	c := 0
	for i := range cands {
		probs[i] = 0
		if cands[i].ID == p.pick {
			c = i
		}
	}
	probs[c] = 1
	return c, nil
}

func (p *fixed) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if p.ev != nil {
		p.ev.add("update:" + p.name)
	}
	p.mu.Lock()
	p.updates = append(p.updates, cands[chosen].ID)
	p.rewards = append(p.rewards, reward)
	p.mu.Unlock()
	return nil
}

func (p *fixed) seen() ([]string, []float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.updates...), append([]float64(nil), p.rewards...)
}

type tracedRule struct {
	ev   *events
	deny string
}

func (r tracedRule) Name() string { return "deny_" + r.deny }
func (r tracedRule) Allow(_ *decision.Features, a *decision.Arm) bool {
	r.ev.add("rule:" + a.ID)
	return a.ID != r.deny
}

// scripted is an Actor returning a fixed outcome.
type scripted struct {
	ev  *events
	out decision.Outcome
}

func (a *scripted) Act(_ context.Context, _ *decision.Request, d *decision.Decision, o *decision.Outcome) error {
	if a.ev != nil {
		a.ev.add("act:" + d.Arm().ID)
	}
	attempts := o.Attempts
	*o = a.out
	o.Attempts = append(attempts[:0], a.out.Attempts...)
	o.Arm = d.Arm().ID
	return nil
}

type sinkFunc func(*decision.Record)

func (f sinkFunc) Log(r *decision.Record) { f(r) }

func catalogue() []decision.Arm {
	return []decision.Arm{
		{ID: "a", PriceIn: 0.001, PriceOut: 0.002, ContextWindow: 1000},
		{ID: "b", PriceIn: 0.002, PriceOut: 0.004, ContextWindow: 8000},
		{ID: "c", PriceIn: 0.004, PriceOut: 0.008},
	}
}

func okOutcome() decision.Outcome {
	return decision.Outcome{Status: decision.StatusOK, Latency: time.Second, TokensIn: 100, TokensOut: 50, Cost: 0.001, Quality: 1, QualityKnown: true}
}

func TestRunOrder(t *testing.T) {
	ev := &events{}
	p := &fixed{name: "p", pick: "c", ev: ev}
	var logged *decision.Record
	core, err := route.NewCore(route.CoreOpts{
		Catalogue: catalogue(),
		Policy:    p,
		Rules:     []route.Rule{tracedRule{ev: ev, deny: "b"}},
		Sink: sinkFunc(func(r *decision.Record) {
			ev.add("sink")
			logged = r
		}),
		Now: func() time.Time { return time.Unix(100, 0) },
	})
	require.NoError(t, err)
	var rec decision.Record
	req := decision.Request{ID: "r1", Features: decision.Features{Task: "code", PromptTokens: 10}}
	require.NoError(t, core.Run(context.Background(), &req, &scripted{ev: ev, out: okOutcome()}, &rec))
	assert.Equal(t, []string{"rule:a", "rule:b", "rule:c", "select:p", "act:c", "update:p", "sink"}, ev.reset())

	require.Same(t, &rec, logged, "the sink gets the record")
	assert.Equal(t, "r1", rec.Request.ID)
	assert.Equal(t, []string{"a", "c"}, ids(rec.Decision.Candidates), "the rule removed b")
	assert.Equal(t, []float64{0, 1}, rec.Decision.Probs)
	assert.Equal(t, "c", rec.Decision.Arm().ID)
	assert.Equal(t, decision.ReasonPolicy, rec.Decision.Reason)
	assert.Equal(t, "p", rec.Decision.Policy)
	assert.Equal(t, "1", rec.Decision.PolicyVersion)
	assert.Equal(t, time.Unix(100, 0), rec.Time, "Now stamps the record")
	assert.Equal(t, decision.RewardImmediate, rec.RewardSource)
	want := decision.DefaultReward().Of(&rec.Outcome)
	assert.InDelta(t, want, rec.Reward, 1e-12)
	upd, rw := p.seen()
	assert.Equal(t, []string{"c"}, upd)
	assert.Equal(t, []float64{want}, rw, "the policy learns the reward the record carries")
	assert.Equal(t, int64(1), core.Profiles().Get("c").Requests, "profiles observe the outcome")
}

func ids(arms []decision.Arm) []string {
	out := make([]string, len(arms))
	for i := range arms {
		out[i] = arms[i].ID
	}
	return out
}

func TestForcedModel(t *testing.T) {
	p := &fixed{name: "p", pick: "a"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p})
	require.NoError(t, err)
	var rec decision.Record
	req := decision.Request{Features: decision.Features{PromptTokens: 5000}, Forced: "a"}
	require.NoError(t, core.Run(context.Background(), &req, &scripted{out: okOutcome()}, &rec))
	d := &rec.Decision
	assert.Equal(t, decision.ReasonForced, d.Reason)
	assert.Equal(t, []string{"a"}, ids(d.Candidates), "a forced model bypasses the rules and the policy")
	assert.Equal(t, 1.0, d.Prob(), "a forced model has propensity 1")
	upd, _ := p.seen()
	assert.Empty(t, upd, "the policy does not learn from a choice it did not make")
	assert.Empty(t, p.vectors, "the policy was not asked")

	req.Forced = "zzz"
	err = core.Run(context.Background(), &req, &scripted{out: okOutcome()}, &rec)
	assert.ErrorContains(t, err, `forced model "zzz" is not in the catalogue`)
}

func TestEmptyCandidateSetNamesTheRules(t *testing.T) {
	deny := route.RuleFunc{RuleName: "tenant_whitelist", Fn: func(f *decision.Features, a *decision.Arm) bool { return a.ID == "a" }}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"}, Rules: []route.Rule{route.ContextWindowRule{Reserve: 100}, deny}})
	require.NoError(t, err)
	var d decision.Decision
	// 950+100 tokens do not fit a (1000); the whitelist removes b and c.
	err = core.Decide(context.Background(), &decision.Request{Features: decision.Features{PromptTokens: 950}}, &d)
	require.ErrorIs(t, err, route.ErrNoCandidates)
	assert.ErrorContains(t, err, "3 models; context_window rejected 1, tenant_whitelist rejected 2")
	// A small prompt fits a, which the whitelist keeps.
	require.NoError(t, core.Decide(context.Background(), &decision.Request{Features: decision.Features{PromptTokens: 10}}, &d))
	assert.Equal(t, []string{"a"}, ids(d.Candidates))
}

func TestShadowLoggedAndLearnsOnlyOnAgreement(t *testing.T) {
	serving := &fixed{name: "serving", pick: "b"}
	shadow := &fixed{name: "shadow", pick: "c"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: serving, Shadow: shadow})
	require.NoError(t, err)
	var rec decision.Record
	act := &scripted{out: okOutcome()}
	require.NoError(t, core.Run(context.Background(), &decision.Request{}, act, &rec))
	assert.Equal(t, decision.Shadow{Policy: "shadow", Arm: "c", Prob: 1, LoggedProb: 0, LoggedProbKnown: true}, rec.Decision.Shadow,
		"the shadow's probability of the served arm b is logged for off-policy evaluation")
	assert.Len(t, rec.Decision.Probs, 3, "shadow propensities do not leak into the serving ones")
	assert.Equal(t, []float64{0, 1, 0}, rec.Decision.Probs)
	upd, _ := shadow.seen()
	assert.Empty(t, upd, "the shadow chose another arm: it learns nothing")

	shadow.pick = "b"
	require.NoError(t, core.Run(context.Background(), &decision.Request{}, act, &rec))
	assert.Equal(t, "b", rec.Decision.Shadow.Arm)
	upd, _ = shadow.seen()
	assert.Equal(t, []string{"b"}, upd, "the shadow agreed: it learns the reward")
	upd, _ = serving.seen()
	assert.Equal(t, []string{"b", "b"}, upd)

	core.SetShadow(nil)
	assert.Nil(t, core.ShadowPolicy())
	require.NoError(t, core.Run(context.Background(), &decision.Request{}, act, &rec))
	assert.Equal(t, decision.Shadow{}, rec.Decision.Shadow, "no shadow, no shadow fields")
}

func TestHotSwapIsRaceFree(t *testing.T) {
	p1 := policy.NewRandom(policy.RandomOpts{Seed: 1})
	p2, err := policy.NewThompson(policy.ThompsonOpts{Seed: 2})
	require.NoError(t, err)
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p1})
	require.NoError(t, err)
	ctx := context.Background()
	var wg sync.WaitGroup
	names := make(chan string, 8*500)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec decision.Record
			act := &scripted{out: okOutcome()}
			for i := 0; i < 500; i++ {
				if err := core.Run(ctx, &decision.Request{}, act, &rec); err != nil {
					t.Error(err)
					return
				}
				names <- rec.Decision.Policy
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			core.SetPolicy(p2)
		} else {
			core.SetPolicy(p1)
		}
	}
	wg.Wait()
	close(names)
	for n := range names {
		assert.Contains(t, []string{"random", "thompson"}, n)
	}
}

func TestLateRewardAfterSwapIsDropped(t *testing.T) {
	old := &fixed{name: "old", pick: "a"}
	next := &fixed{name: "next", pick: "a"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: old})
	require.NoError(t, err)
	var d decision.Decision
	f := decision.Features{}
	require.NoError(t, core.Decide(context.Background(), &decision.Request{}, &d))
	core.SetPolicy(next)
	assert.Same(t, next, core.Policy())
	require.NoError(t, core.Learn(&f, &d, 0.7))
	u1, _ := old.seen()
	u2, _ := next.seen()
	assert.Empty(t, u1, "the old policy is no longer serving")
	assert.Empty(t, u2, "the new policy did not make this decision")
}

func TestRewardForFallback(t *testing.T) {
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p", pick: "a"}})
	require.NoError(t, err)
	var d decision.Decision
	require.NoError(t, core.Decide(context.Background(), &decision.Request{}, &d))
	r := core.Reward()
	// a timed out after 3s; b answered well. The decision chose a, so it
	// is credited with a failure at a's latency, not b's success.
	o := okOutcome()
	o.Arm = "b"
	o.Attempts = []decision.Attempt{{Arm: "a", Status: decision.StatusTimeout, Latency: 3 * time.Second}, {Arm: "b", Status: decision.StatusOK, Latency: time.Second, Fallback: 1}}
	assert.InDelta(t, r.Terms(0, 0, 3*time.Second, 1), core.RewardFor(&d, &o), 1e-12)
	// Without a fallback the outcome's own reward counts.
	o2 := okOutcome()
	o2.Attempts = []decision.Attempt{{Arm: "a", Status: decision.StatusOK, Latency: time.Second}}
	assert.InDelta(t, r.Of(&o2), core.RewardFor(&d, &o2), 1e-12)
	// A custom reward with a small failure weight shows the latency term.
	rw := decision.Reward{Quality: 0.5, Cost: 0.25, Latency: 0.25, Failure: 0.1, CostRef: 0.01, LatencyRef: time.Second}
	core2, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p", pick: "a"}, Reward: rw})
	require.NoError(t, err)
	assert.InDelta(t, 0.25+0.25/(1+3.0)-0.1, core2.RewardFor(&d, &o), 1e-12)
}

func TestRewardFormula(t *testing.T) {
	r := decision.DefaultReward()
	for _, tc := range []struct {
		name string
		o    decision.Outcome
		want float64
	}{
		{"perfect, free, instant", decision.Outcome{Quality: 1, QualityKnown: true}, 1},
		{"quality known", decision.Outcome{Quality: 0.5, QualityKnown: true, Cost: 0.002, Latency: 2 * time.Second}, 0.6*0.5 + 0.2/2 + 0.2/2},
		{"quality unknown uses 0.5", decision.Outcome{Cost: 0.006, Latency: 6 * time.Second}, 0.6*0.5 + 0.2/4 + 0.2/4},
		{"failure earns 0", decision.Outcome{Status: decision.StatusError, Quality: 1, QualityKnown: true}, 0},
		{"429 earns 0", decision.Outcome{Status: decision.StatusRateLimited}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, r.Of(&tc.o), 1e-12)
			assert.InDelta(t, tc.want, decision.Reward{}.Of(&tc.o), 1e-12, "zero Reward = default")
		})
	}
	big := decision.Reward{Quality: 1, Cost: 1, Latency: 1, Failure: 0, CostRef: 1, LatencyRef: time.Second}
	assert.Equal(t, 1.0, big.Terms(1, 0, 0, 0), "clamped to 1")
	neg := decision.Reward{Quality: 0.1, Cost: 0.1, Latency: 0.1, Failure: 5, CostRef: 1, LatencyRef: time.Second}
	assert.Equal(t, 0.0, neg.Terms(1, 0, 0, 1), "clamped to 0")
}

func TestRewardValidate(t *testing.T) {
	good := decision.DefaultReward()
	require.NoError(t, good.Validate())
	require.NoError(t, decision.Reward{}.Validate())
	for _, tc := range []struct {
		edit func(*decision.Reward)
		want string
	}{
		{func(r *decision.Reward) { r.Quality = -1 }, "reward weight quality: -1"},
		{func(r *decision.Reward) { r.Cost = math.NaN() }, "reward weight cost: NaN"},
		{func(r *decision.Reward) { r.Latency = math.Inf(1) }, "reward weight latency: +Inf"},
		{func(r *decision.Reward) { r.Failure = -0.5 }, "reward weight failure: -0.5"},
		{func(r *decision.Reward) { r.Quality, r.Cost, r.Latency = 0, 0, 0 }, "all zero"},
		{func(r *decision.Reward) { r.CostRef = 0 }, "reward cost_ref: 0 must be > 0"},
		{func(r *decision.Reward) { r.LatencyRef = -time.Second }, "reward latency_ref: -1s must be > 0"},
		{func(r *decision.Reward) { r.UnknownQuality = 1.5 }, "reward unknown_quality: 1.5 outside [0,1]"},
	} {
		r := good
		tc.edit(&r)
		err := r.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
		_, err = route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"}, Reward: r})
		assert.ErrorContains(t, err, tc.want, "NewCore validates the reward")
	}
}

func TestNewCoreErrors(t *testing.T) {
	p := &fixed{name: "p"}
	for _, tc := range []struct {
		o    route.CoreOpts
		want string
	}{
		{route.CoreOpts{Policy: p}, "catalogue: no models"},
		{route.CoreOpts{Catalogue: []decision.Arm{{ID: "a"}, {}}, Policy: p}, "catalogue[1]: empty model id"},
		{route.CoreOpts{Catalogue: []decision.Arm{{ID: "a"}, {ID: "a"}}, Policy: p}, `catalogue[1]: duplicate model id "a"`},
		{route.CoreOpts{Catalogue: catalogue()}, "policy: none given"},
	} {
		_, err := route.NewCore(tc.o)
		assert.ErrorContains(t, err, tc.want)
	}
}

// badPolicy returns an error or an out-of-range choice.
type badPolicy struct{ chosen int }

func (badPolicy) Name() string { return "bad" }
func (b badPolicy) Select(context.Context, *decision.Features, []decision.Arm, []float64) (int, error) {
	if b.chosen < 0 {
		return 0, errors.New("boom")
	}
	return b.chosen, nil
}
func (badPolicy) Update(*decision.Features, []decision.Arm, int, float64) error {
	return errors.New("update boom")
}

func TestPolicyErrors(t *testing.T) {
	ctx := context.Background()
	var d decision.Decision
	c1, _ := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: badPolicy{chosen: -1}})
	assert.ErrorContains(t, c1.Decide(ctx, &decision.Request{}, &d), "policy bad select: boom")
	c2, _ := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: badPolicy{chosen: 7}})
	assert.ErrorContains(t, c2.Decide(ctx, &decision.Request{}, &d), "policy bad select: chose 7 of 3 candidates")
	c3, _ := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: badPolicy{chosen: 0}})
	var rec decision.Record
	logged := false
	c3b, _ := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: badPolicy{chosen: 0}, Sink: sinkFunc(func(*decision.Record) { logged = true })})
	assert.ErrorContains(t, c3.Run(ctx, &decision.Request{}, &scripted{out: okOutcome()}, &rec), "policy bad update: update boom")
	assert.ErrorContains(t, c3b.Run(ctx, &decision.Request{}, &scripted{out: okOutcome()}, &rec), "update boom")
	assert.True(t, logged, "a failed update still logs the record")
}

// failing is an Actor that cannot act at all.
type failing struct{}

func (failing) Act(context.Context, *decision.Request, *decision.Decision, *decision.Outcome) error {
	return errors.New("no route to provider")
}

func TestActErrorIsAFailure(t *testing.T) {
	p := &fixed{name: "p"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p})
	require.NoError(t, err)
	var rec decision.Record
	require.NoError(t, core.Run(context.Background(), &decision.Request{}, failing{}, &rec))
	assert.Equal(t, decision.StatusError, rec.Outcome.Status)
	assert.Zero(t, rec.Reward)
	_, rw := p.seen()
	assert.Equal(t, []float64{0}, rw, "the policy learns the failure")
}

// oneHot is a test encoder.
type oneHot struct{}

func (oneHot) Dim() int { return 2 }
func (oneHot) Encode(f *decision.Features, dst []float64) []float64 {
	if f.Task == "code" {
		return append(dst, 1, 0)
	}
	return append(dst, 0, 1)
}

func TestEncoderRunsBeforeSelect(t *testing.T) {
	p := &fixed{name: "p"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Encoder: oneHot{}})
	require.NoError(t, err)
	var rec decision.Record
	for _, task := range []string{"code", "chat", "code"} {
		require.NoError(t, core.Run(context.Background(), &decision.Request{Features: decision.Features{Task: task}}, &scripted{out: okOutcome()}, &rec))
	}
	assert.Equal(t, [][]float64{{1, 0}, {0, 1}, {1, 0}}, p.vectors)
}

func TestRunDoesNotAllocate(t *testing.T) {
	p, err := policy.NewThompson(policy.ThompsonOpts{Seed: 1})
	require.NoError(t, err)
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Rules: []route.Rule{route.ContextWindowRule{}}})
	require.NoError(t, err)
	ctx := context.Background()
	req := decision.Request{ID: "x", Features: decision.Features{Task: "code", PromptTokens: 100}}
	act := &scripted{out: okOutcome()}
	var rec decision.Record
	for i := 0; i < 100; i++ { // warm up: first sight of each arm allocates its profile and stats
		require.NoError(t, core.Run(ctx, &req, act, &rec))
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := core.Run(ctx, &req, act, &rec); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "Run with a reused record allocates nothing")
}

func TestStatusAndSourceNames(t *testing.T) {
	for _, s := range []decision.Status{decision.StatusOK, decision.StatusError, decision.StatusRateLimited, decision.StatusTimeout} {
		got, err := decision.ParseStatus(s.String())
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	_, err := decision.ParseStatus("melted")
	assert.ErrorContains(t, err, `unknown status "melted"`)
	assert.Equal(t, "status(9)", decision.Status(9).String())
	assert.False(t, decision.StatusOK.Failed())
	assert.True(t, decision.StatusTimeout.Failed())
	for _, s := range []decision.RewardSource{decision.RewardImmediate, decision.RewardDelayed, decision.RewardDefault} {
		got, err := decision.ParseRewardSource(s.String())
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	_, err = decision.ParseRewardSource("psychic")
	assert.Error(t, err)
	assert.Equal(t, "source(7)", decision.RewardSource(7).String())
}

// advisoryDeny rejects one arm and says it is only advisory (like the
// gateway's health rule).
type advisoryDeny struct{ deny string }

func (advisoryDeny) Name() string                                       { return "health" }
func (r advisoryDeny) Allow(_ *decision.Features, a *decision.Arm) bool { return a.ID != r.deny }
func (advisoryDeny) Advisory() bool                                     { return true }

func TestCheckNamesTheRejectingRule(t *testing.T) {
	onlyB := route.RuleFunc{RuleName: "tenant_allowlist", Fn: func(f *decision.Features, a *decision.Arm) bool { return f.Tenant != "t2" || a.ID == "b" }}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"},
		Rules: []route.Rule{route.ContextWindowRule{Reserve: 100}, onlyB, advisoryDeny{deny: "c"}}})
	require.NoError(t, err)
	f := &decision.Features{PromptTokens: 950}
	err = core.Check("a", f)
	var re *route.RuleError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, route.RuleError{Rule: "context_window", Arm: "a"}, *re, "950+100 tokens do not fit a's 1000")
	assert.ErrorIs(t, err, route.ErrRuleRejected)
	assert.EqualError(t, err, `model "a" rejected by rule context_window`)
	assert.NoError(t, core.Check("b", f))
	assert.EqualError(t, core.Check("c", f), `model "c" rejected by rule health`, "Check applies advisory rules too")
	f.Tenant = "t2"
	assert.NoError(t, core.Check("b", f))
	assert.EqualError(t, core.Check("a", f), `model "a" rejected by rule context_window`, "the first rejecting rule is named")
	f.PromptTokens = 10
	assert.EqualError(t, core.Check("a", f), `model "a" rejected by rule tenant_allowlist`)
	err = core.Check("zzz", f)
	assert.ErrorIs(t, err, route.ErrUnknownArm)
	assert.EqualError(t, err, `model "zzz" is not in the catalogue`)
	assert.Equal(t, "b", core.Arm("b").ID)
	assert.Equal(t, 0.002, core.Arm("b").PriceIn, "the catalogue arm, prices included")
	assert.Nil(t, core.Arm("zzz"))
}

func TestForcedModelPassesTheRules(t *testing.T) {
	onlyB := route.RuleFunc{RuleName: "tenant_allowlist", Fn: func(f *decision.Features, a *decision.Arm) bool { return f.Tenant != "t2" || a.ID == "b" }}
	p := &fixed{name: "p"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p,
		Rules: []route.Rule{route.ContextWindowRule{}, onlyB, advisoryDeny{deny: "c"}}})
	require.NoError(t, err)
	ctx := context.Background()
	var d decision.Decision
	for _, tc := range []struct {
		forced, tenant string
		tokens         int
		rule           string // "" = decided
	}{
		{"a", "", 5000, "context_window"},
		{"a", "t2", 10, "tenant_allowlist"},
		{"b", "t2", 5000, ""},
		{"c", "", 10, ""}, // only an advisory rule rejects c: forced, it is still decided
	} {
		req := decision.Request{Forced: tc.forced, Features: decision.Features{Tenant: tc.tenant, PromptTokens: tc.tokens}}
		err := core.Decide(ctx, &req, &d)
		if tc.rule == "" {
			require.NoError(t, err, "%+v", tc)
			assert.Equal(t, []string{tc.forced}, ids(d.Candidates))
			assert.Equal(t, decision.ReasonForced, d.Reason)
			continue
		}
		var re *route.RuleError
		require.ErrorAs(t, err, &re, "%+v", tc)
		assert.Equal(t, route.RuleError{Rule: tc.rule, Arm: tc.forced}, *re)
		assert.ErrorContains(t, err, "forced model")
	}
	assert.Empty(t, p.vectors, "the policy was never asked")
	// Routed, the advisory rule removes c like any rule.
	require.NoError(t, core.Decide(ctx, &decision.Request{Features: decision.Features{PromptTokens: 10}}, &d))
	assert.Equal(t, []string{"a", "b"}, ids(d.Candidates))
}

// TestSameModelRetryEarnsTheOutcomeReward: the chosen arm failed once, was
// retried and answered; it earns the answer's reward, not a failure.
func TestSameModelRetryEarnsTheOutcomeReward(t *testing.T) {
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p", pick: "a"}})
	require.NoError(t, err)
	var d decision.Decision
	require.NoError(t, core.Decide(context.Background(), &decision.Request{}, &d))
	o := okOutcome()
	o.Arm = "a"
	o.Attempts = []decision.Attempt{{Arm: "a", Status: decision.StatusError, Latency: 200 * time.Millisecond},
		{Arm: "a", Status: decision.StatusOK, Latency: time.Second}}
	r := core.Reward()
	want := r.Of(&o)
	assert.InDelta(t, 0.8667, want, 1e-3)
	assert.InDelta(t, want, core.RewardFor(&d, &o), 1e-12, "a same-model retry that answered earns the outcome's reward")
	assert.InDelta(t, want, r.ForDecision(&d, &o), 1e-12)
	// Every retry failed: a failure, at the first attempt's latency.
	o.Status = decision.StatusError
	o.Attempts[1].Status = decision.StatusError
	assert.InDelta(t, r.Terms(0, 0, 200*time.Millisecond, 1), core.RewardFor(&d, &o), 1e-12)
	// Retried, then a fallback answered: still the chosen arm's failure.
	o.Status = decision.StatusOK
	o.Arm = "b"
	o.Attempts = append(o.Attempts, decision.Attempt{Arm: "b", Status: decision.StatusOK, Latency: time.Second, Fallback: 1})
	assert.InDelta(t, r.Terms(0, 0, 200*time.Millisecond, 1), core.RewardFor(&d, &o), 1e-12)
}

// spender is fixed that also records the spend the core reports.
type spender struct {
	fixed
	spends []string
}

func (p *spender) ObserveSpend(f *decision.Features, chosen string, routed bool, cost float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spends = append(p.spends, fmt.Sprintf("%s %s routed=%v $%g", f.Tenant, chosen, routed, cost))
}

// TestCompleteReportsSpend: the core reports every completed request's
// realised cost to a serving policy that enforces a budget — routed and
// forced requests alike, the latter as not routed.
func TestCompleteReportsSpend(t *testing.T) {
	p := &spender{fixed: fixed{name: "p", pick: "b"}}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p})
	require.NoError(t, err)
	var rec decision.Record
	out := okOutcome()
	out.Cost = 0.007
	req := decision.Request{Features: decision.Features{Tenant: "acme"}}
	require.NoError(t, core.Run(context.Background(), &req, &scripted{out: out}, &rec))
	req.Forced = "c"
	require.NoError(t, core.Run(context.Background(), &req, &scripted{out: out}, &rec))
	assert.Equal(t, []string{"acme b routed=true $0.007", "acme c routed=false $0.007"}, p.spends)
}
