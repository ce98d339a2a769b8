package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

func TestOPEAccHandComputed(t *testing.T) {
	// r = 1, 0, 0.5 with w = 2, 0, 1: d = 1, 0, 0.
	var a opeAcc
	for _, x := range []struct{ r, w float64 }{{1, 2}, {0, 0}, {0.5, 1}} {
		a.add(x.r, x.w)
	}
	e := a.estimate(1.96)
	assert.Equal(t, int64(3), e.N)
	assert.InDelta(t, 0.5, e.IncumbentValue, 1e-12, "incumbent mean")
	assert.InDelta(t, 2.5/3, e.ShadowValue, 1e-12, "IPS = (2+0+0.5)/3")
	assert.InDelta(t, 2.5/3, e.ShadowSNIPS, 1e-12, "SNIPS = 2.5/Σw=3")
	assert.InDelta(t, 1.0/3, e.Diff, 1e-12, "diff = mean(1,0,0)")
	assert.InDelta(t, 9.0/5, e.ESS, 1e-12, "ESS = 3²/5")
	// sample variance of (1,0,0) = 1/3; half width = 1.96·sqrt(1/3/3).
	half := 1.96 * math.Sqrt(1.0/9)
	assert.InDelta(t, 1.0/3-half, e.CILow, 1e-12)
	assert.InDelta(t, 1.0/3+half, e.CIHigh, 1e-12)

	var one opeAcc
	one.add(1, 1)
	e = one.estimate(1.96)
	assert.True(t, math.IsInf(e.CILow, -1) && math.IsInf(e.CIHigh, 1), "one sample: infinite interval, got [%v, %v]", e.CILow, e.CIHigh)
}

func TestOPEAccCoversTrueDifference(t *testing.T) {
	// Logging: uniform over two arms with rewards 0.8 and 0.2; target
	// always plays arm 0 (value 0.8); incumbent value 0.5; true diff 0.3.
	// Deterministic alternation keeps the test exact: the estimate must
	// equal the truth and its interval must contain it.
	var a opeAcc
	for i := range 400 {
		if i%2 == 0 {
			a.add(0.8, 2)
		} else {
			a.add(0.2, 0)
		}
	}
	e := a.estimate(1.96)
	assert.InDelta(t, 0.3, e.Diff, 1e-9)
	assert.Less(t, e.CILow, 0.3)
	assert.Greater(t, e.CIHigh, 0.3)
	assert.Greater(t, e.CILow, 0.2, "400 samples pin the difference down")
	assert.InDelta(t, 200, e.ESS, 1e-9, "half the weights are zero")
}

// TestOPEAccCoverage checks the interval's coverage by simulation: a
// uniform logging policy over three Bernoulli arms (means 0.8, 0.5, 0.2), a
// target that always plays arm 0; true difference 0.8 − 0.5 = 0.3. Over 400
// seeded replications of 300 requests the 95% interval must cover it in
// 91–99% of them (binomial sd ≈ 1.1%), and the mean estimate must be
// unbiased within 0.01 (sd of the mean ≈ 0.0025).
func TestOPEAccCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	means := []float64{0.8, 0.5, 0.2}
	const reps, n, truth = 400, 300, 0.3
	covered, sum := 0, 0.0
	for range reps {
		var a opeAcc
		for range n {
			arm := rng.IntN(3)
			r := 0.0
			if rng.Float64() < means[arm] {
				r = 1
			}
			w := 0.0
			if arm == 0 {
				w = 1 / (1.0 / 3)
			}
			a.add(r, w)
		}
		e := a.estimate(1.959964)
		sum += e.Diff
		if e.CILow <= truth && truth <= e.CIHigh {
			covered++
		}
	}
	cov := float64(covered) / reps
	t.Logf("coverage %.3f, mean %.4f", cov, sum/reps)
	assert.GreaterOrEqual(t, cov, 0.91, "coverage got %.3f want ≈ 0.95", cov)
	assert.LessOrEqual(t, cov, 0.99, "coverage got %.3f want ≈ 0.95", cov)
	assert.InDelta(t, truth, sum/reps, 0.01, "mean of the estimates")
}

func TestPromotionConfigValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, field string }{
		{"promotion: {min_samples: -1}", "promotion.min_samples"},
		{"promotion: {margin: 2}", "promotion.margin"},
		{"promotion: {confidence: 1.5}", "promotion.confidence"},
		{"promotion: {rollback_guard: -0.1}", "promotion.rollback_guard"},
		{"promotion: {rollback_window: -3}", "promotion.rollback_window"},
	} {
		_, err := ParseConfig([]byte(tc.yaml + "\nproviders: [{name: sim, type: sim}]\nmodels: [{id: a, provider: sim, sim: {quality: {\"\": 0.5}}}]\n"))
		require.Error(t, err, tc.yaml)
		assert.Contains(t, err.Error(), tc.field, "error names the field")
	}
	c, err := ParseConfig([]byte("providers: [{name: sim, type: sim}]\nmodels: [{id: a, provider: sim, sim: {quality: {\"\": 0.5}}}]\n"))
	require.NoError(t, err)
	assert.Equal(t, PromotionConfig{MinSamples: 500, Confidence: 0.95, RollbackGuard: 0.05, RollbackWindow: 200}, c.Promotion)
}

// degradable wraps a provider; when bad is set every answer's judged
// quality is zero (a provider that still answers, but badly).
type degradable struct {
	provider.Provider
	bad atomic.Bool
}

func (d *degradable) Complete(ctx context.Context, c *provider.Call) (provider.Result, error) {
	r, err := d.Provider.Complete(ctx, c)
	if d.bad.Load() {
		r.Quality = 0
	}
	return r, err
}

type promoGW struct {
	srv *Server
	url string
	sim *degradable
}

// startPromoGateway serves two sim models, "good" (quality 0.9) and "bad"
// (quality 0.2), with the given serving and shadow policies.
func startPromoGateway(t *testing.T, serving, shadow, promotion string) *promoGW {
	t.Helper()
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
providers: [{name: sim, type: sim, time_scale: 0.001, health_check: false}]
models:
  - {id: good, provider: sim, quality: 0.9, latency_ms: 100, sim: {ttft_ms: 100, tokens_per_sec: 100, output_tokens: 5, quality: {"": 0.9}}}
  - {id: bad, provider: sim, quality: 0.2, latency_ms: 100, sim: {ttft_ms: 100, tokens_per_sec: 100, output_tokens: 5, quality: {"": 0.2}}}
policy: {name: %s, params: {seed: "7"}}
shadow: {name: %s}
promotion: %s
log: {dir: ""}
`, serving, shadow, promotion)))
	require.NoError(t, err)
	inner, err := provider.NewSim(provider.SimOpts{Name: "sim", Seed: 3, TimeScale: 0.001, Models: map[string]provider.SimModel{
		"good": {TTFTMS: 100, TokensPerSec: 100, OutputTokens: 5, Quality: map[string]float64{"": 0.9}},
		"bad":  {TTFTMS: 100, TokensPerSec: 100, OutputTokens: 5, Quality: map[string]float64{"": 0.2}},
	}})
	require.NoError(t, err)
	sim := &degradable{Provider: inner}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Providers: map[string]provider.Provider{"sim": sim},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &promoGW{srv: srv, url: hs.URL, sim: sim}
}

// drive sends n routed requests from 4 clients at once.
func (g *promoGW) drive(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				code, _, body := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
				assert.Equal(t, 200, code, "%s", body)
			}
		})
	}
	wg.Wait()
}

const (
	defaultWait = 10 * time.Second
	pollEvery   = 5 * time.Millisecond
)

// n is the running estimate's sample count (safe inside Eventually).
func (g *promoGW) n() int64 {
	return g.srv.promo.status(g.srv.core.Policy(), g.srv.core.ShadowPolicy()).N
}

func (g *promoGW) status(t *testing.T) ShadowStatus {
	t.Helper()
	res, err := http.Get(g.url + "/admin/shadow/status")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	var st ShadowStatus
	require.NoError(t, json.NewDecoder(res.Body).Decode(&st))
	return st
}

// metric scrapes /metrics for one series; absent counts as 0.
func (g *promoGW) metric(t *testing.T, series string) float64 {
	t.Helper()
	res, err := http.Get(g.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "series %s", series)
			return f
		}
	}
	return 0
}

func TestPromoteBetterShadow(t *testing.T) {
	g := startPromoGateway(t, "random", "weighted", "{min_samples: 250, margin: 0.02, rollback_window: 50}")
	st := g.status(t)
	assert.False(t, st.Eligible)
	assert.Nil(t, st.CILow, "no interval before two samples")
	code, _, body := post(t, g.url+"/admin/promote", "")
	require.Equal(t, http.StatusConflict, code, "%s", body)
	assert.Contains(t, string(body), "0 of 250 samples")

	g.drive(t, 300)
	require.Eventually(t, func() bool { return g.n() >= 250 }, defaultWait, pollEvery)
	st = g.status(t)
	t.Logf("status: %+v ci=[%v,%v]", st, *st.CILow, *st.CIHigh)
	require.True(t, st.Eligible, "weighted always picks the good model: %s", st.Reason)
	assert.Empty(t, st.Warning, "random serving explores")
	assert.Greater(t, st.Diff, 0.1, "shadow − incumbent")
	assert.Greater(t, st.ShadowValue, st.IncumbentValue)
	assert.InDelta(t, float64(st.N)/2, st.ESS, float64(st.N)/5, "w ∈ {0,2} with P(w=2)=1/2: ESS ≈ n/2")

	code, _, body = post(t, g.url+"/admin/promote", "")
	require.Equal(t, 200, code, "%s", body)
	var pr PromoteResponse
	require.NoError(t, json.Unmarshal(body, &pr))
	assert.Equal(t, PromoteResponse{Policy: "weighted", Shadow: "random", Previous: "random"}, PromoteResponse{Policy: pr.Policy, Shadow: pr.Shadow, Previous: pr.Previous})
	assert.Empty(t, pr.Warning)
	assert.Equal(t, "weighted", g.srv.Core().Policy().Name())
	assert.Equal(t, "random", g.srv.Core().ShadowPolicy().Name())
	st = g.status(t)
	assert.Equal(t, int64(0), st.N, "the estimate restarts with the new pair")
	assert.Equal(t, "random", st.Previous)
	require.NotNil(t, st.Guard, "the rollback guard is armed")
	assert.Equal(t, 1.0, g.metric(t, `routelab_promotions_total{kind="guarded"}`))

	// Rollback restores the incumbent in one call; a second has nothing left.
	code, _, body = post(t, g.url+"/admin/rollback", "")
	require.Equal(t, 200, code, "%s", body)
	assert.Equal(t, "random", g.srv.Core().Policy().Name())
	assert.Equal(t, "weighted", g.srv.Core().ShadowPolicy().Name())
	code, _, _ = post(t, g.url+"/admin/rollback", "")
	assert.Equal(t, http.StatusConflict, code)
	assert.Equal(t, 1.0, g.metric(t, `routelab_rollbacks_total{trigger="manual"}`))
}

func TestPromoteRefusesWorseShadowUnlessForced(t *testing.T) {
	g := startPromoGateway(t, "weighted", "random", "{min_samples: 60}")
	g.drive(t, 80)
	require.Eventually(t, func() bool { return g.n() >= 60 }, defaultWait, pollEvery)
	st := g.status(t)
	assert.False(t, st.Eligible)
	assert.Less(t, st.Diff, 0.0, "random is worse than always-good")
	assert.Contains(t, st.Warning, "replay estimate", "weighted serves deterministically")
	code, _, body := post(t, g.url+"/admin/promote", `{"force": false}`)
	require.Equal(t, http.StatusConflict, code, "%s", body)
	e := decodeAPIError(t, body)
	assert.Contains(t, e.Error.Message, "not above margin")
	assert.Equal(t, "weighted", g.srv.Core().Policy().Name(), "nothing swapped")

	code, _, body = post(t, g.url+"/admin/promote", `{"forced": true}`)
	assert.Equal(t, http.StatusBadRequest, code, "unknown field: %s", body)

	code, _, body = post(t, g.url+"/admin/promote", `{"force": true}`)
	require.Equal(t, 200, code, "%s", body)
	var pr PromoteResponse
	require.NoError(t, json.Unmarshal(body, &pr))
	assert.True(t, pr.Forced)
	assert.Contains(t, pr.Warning, "forced promotion")
	assert.Equal(t, "random", g.srv.Core().Policy().Name())
	assert.Equal(t, 1.0, g.metric(t, `routelab_promotions_total{kind="forced"}`))
}

func TestAutomaticRollbackOnDegradedProvider(t *testing.T) {
	g := startPromoGateway(t, "random", "weighted", "{min_samples: 100, rollback_window: 40, rollback_guard: 0.05}")
	g.drive(t, 140)
	require.Eventually(t, func() bool { return g.n() >= 100 }, defaultWait, pollEvery)
	code, _, body := post(t, g.url+"/admin/promote", "")
	require.Equal(t, 200, code, "%s", body)
	st := g.status(t)
	require.NotNil(t, st.Guard)

	// Healthy traffic after the promotion keeps the new policy.
	g.drive(t, 60)
	assert.Equal(t, "weighted", g.srv.Core().Policy().Name(), "better policy kept while healthy")
	assert.Equal(t, 0.0, g.metric(t, `routelab_rollbacks_total{trigger="auto"}`))

	g.sim.bad.Store(true)
	g.drive(t, 80)
	require.Eventually(t, func() bool { return g.srv.Core().Policy().Name() == "random" }, defaultWait, pollEvery,
		"live reward fell below the guard: rolled back")
	assert.Equal(t, 1.0, g.metric(t, `routelab_rollbacks_total{trigger="auto"}`))
	assert.Equal(t, "weighted", g.srv.Core().ShadowPolicy().Name())
	assert.Empty(t, g.status(t).Previous, "nothing left to roll back")
}

func TestPromotionMetricsExported(t *testing.T) {
	g := startPromoGateway(t, "random", "weighted", "{min_samples: 10}")
	g.drive(t, 20)
	require.Eventually(t, func() bool { return g.n() >= 10 }, defaultWait, pollEvery)
	res, err := http.Get(g.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, name := range []string{"routelab_shadow_samples", "routelab_shadow_ess", "routelab_shadow_diff_ci_low", "routelab_shadow_eligible"} {
		assert.True(t, strings.Contains(string(b), "\n"+name+" "), "metric %s exported", name)
	}
}

// TestPromoterObserveIgnoresOtherPairs feeds records directly: a record
// decided by another serving policy, a forced one and one with zero
// propensity do not count; swapping a policy resets the estimate.
func TestPromoterObserveIgnoresOtherPairs(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	serving, err := reg.NewFromString("random")
	require.NoError(t, err)
	shadow, err := reg.NewFromString("weighted")
	require.NoError(t, err)
	p := newPromoter(PromotionConfig{MinSamples: 1})
	rec := func(pol, reason string, prob float64) *decision.Record {
		return &decision.Record{Reward: 1, Decision: decision.Decision{Policy: pol, PolicyVersion: "1", Reason: reason,
			Candidates: []decision.Arm{{ID: "a"}, {ID: "b"}}, Probs: []float64{prob, 1 - prob}, Chosen: 0,
			Shadow: decision.Shadow{Policy: "weighted", Arm: "a", Prob: 1, LoggedProb: 1, LoggedProbKnown: true}}}
	}
	p.observe(serving, shadow, rec("random", decision.ReasonPolicy, 0.5))
	p.observe(serving, shadow, rec("ucb1", decision.ReasonPolicy, 0.5))
	p.observe(serving, shadow, rec("random", decision.ReasonForced, 1))
	p.observe(serving, shadow, rec("random", decision.ReasonPolicy, 0))
	st := p.status(serving, shadow)
	assert.Equal(t, int64(1), st.N)
	assert.InDelta(t, 2.0, st.ShadowValue, 1e-12, "w = 1/0.5")
	other, err := reg.NewFromString("random")
	require.NoError(t, err)
	assert.Equal(t, int64(0), p.status(other, shadow).N, "a new serving policy resets the estimate")
}

// TestPromoteRollbackUnderTraffic swaps the policies back and forth while
// requests flow and status is read: -race checks the estimator, the guard
// and the swaps; every request must still be answered.
func TestPromoteRollbackUnderTraffic(t *testing.T) {
	g := startPromoGateway(t, "random", "weighted", "{min_samples: 5, rollback_window: 5}")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		g.drive(t, 200)
	})
	swaps := 0
	for {
		select {
		case <-done:
			wg.Wait()
			assert.Positive(t, swaps)
			st := g.status(t)
			assert.ElementsMatch(t, []string{"random", "weighted"}, []string{st.Incumbent, st.Shadow}, "the two policies only ever trade places")
			return
		default:
		}
		code, _, body := post(t, g.url+"/admin/promote", `{"force": true}`)
		require.Equal(t, 200, code, "%s", body)
		_ = g.status(t)
		// An automatic rollback may have got there first: 200 or 409.
		code, _, body = post(t, g.url+"/admin/rollback", "")
		require.Contains(t, []int{200, 409}, code, "%s", body)
		swaps++
	}
}

func BenchmarkPromoterObserve(b *testing.B) {
	reg := policy.NewBuiltinRegistry()
	serving, err := reg.NewFromString("random")
	require.NoError(b, err)
	shadow, err := reg.NewFromString("weighted")
	require.NoError(b, err)
	p := newPromoter(PromotionConfig{})
	p.promoted(serving, 0.5) // the guard's window is on the path too
	rec := &decision.Record{Reward: 0.7, Decision: decision.Decision{Policy: "random", PolicyVersion: policy.VersionOf(serving), Reason: decision.ReasonPolicy,
		Candidates: []decision.Arm{{ID: "a"}, {ID: "b"}}, Probs: []float64{0.5, 0.5},
		Shadow: decision.Shadow{Policy: "weighted", Arm: "a", Prob: 1, LoggedProb: 1, LoggedProbKnown: true}}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.observe(serving, shadow, rec)
		}
	})
}
