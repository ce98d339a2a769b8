package sim

import (
	"math"
	"slices"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/integrate/quad"
)

// TestQuadratureMatchesMonteCarlo checks the oracle's expectation over the
// log-normal latency against the mean of the actor's own draws, on arms
// with and without errors, with a timeout that cuts the tail, and with
// custom reward weights whose clamp binds.
func TestQuadratureMatchesMonteCarlo(t *testing.T) {
	const src = `
name: mc
timeout: 4s
traffic: {rate: 1, prompt_tokens: {median: 800, sigma: 0, max: 800}, completion_tokens: {median: 300, sigma: 0, max: 300}}
providers:
  - {name: smooth, price_in: 0.001, price_out: 0.002, latency: {median: 500ms, sigma: 0.5, per_output_token: 5ms}, quality: {"*": 0.7}}
  - {name: narrow, price_in: 0.001, price_out: 0.002, latency: {median: 500ms, sigma: 0.2, per_output_token: 5ms}, error_rate: 0.05, quality: {"*": 0.8}}
  - {name: wide, price_in: 0.01, price_out: 0.03, latency: {median: 1s, sigma: 1.2, per_prompt_token: 1ms}, error_rate: 0.2, quality: {"*": 0.9}}
`
	sc, err := ParseScenario("mc", []byte(src))
	require.NoError(t, err)
	checkMonteCarlo(t, sc, "narrow")
	// A heavy tail far from a long timeout stays on the Gauss–Hermite path.
	heavy, err := ParseScenario("heavy", []byte(`
name: heavy
timeout: 10h
traffic: {rate: 1, prompt_tokens: {median: 800, sigma: 0, max: 800}, completion_tokens: {median: 300, sigma: 0, max: 300}}
providers:
  - {name: heavy, price_in: 0.001, price_out: 0.002, latency: {median: 1s, sigma: 1.5}, error_rate: 0.1, quality: {"*": 0.7}}
`))
	require.NoError(t, err)
	checkMonteCarlo(t, heavy, "heavy")
}

// checkMonteCarlo compares every arm's expected reward with the mean of
// the actor's draws; arms named in gh must take the Gauss–Hermite path.
func checkMonteCarlo(t *testing.T, sc *Scenario, gh ...string) {
	for _, rw := range []decision.Reward{sc.RewardFunc(), {Quality: 0.7, Cost: 0.3, Latency: 0.5, Failure: 0.1, CostRef: 0.01, LatencyRef: 1e9, UnknownQuality: 0.5}} {
		coef := newRewardCoef(rw)
		w := compile(sc)
		for ai := range w.arms {
			a := &w.arms[ai]
			r := request{task: 0, tenant: -1, prompt: 800, compl: 300}
			p := a.params(&r)
			// narrow stays on the Gauss–Hermite path; the others reach the
			// timeout and take the split path.
			assert.Equal(t, slices.Contains(gh, a.id), a.tail5+1.5 <= w.timeout, a.id)
			want := coef.expected(w, a, &p, &r)
			const n = 200_000
			var sum, sumSq float64
			var o decision.Outcome
			for i := 0; i < n; i++ {
				r.idx = i
				w.act(99, ai, &p, &r, &o)
				v := rw.Of(&o)
				sum += v
				sumSq += v * v
			}
			mean := sum / n
			se := math.Sqrt((sumSq/n - mean*mean) / n)
			t.Logf("%s: quadrature %.5f, Monte Carlo %.5f ± %.5f", a.id, want, mean, se)
			assert.InDelta(t, want, mean, 4*se+5e-4, "arm %s, reward %+v: quadrature %.5f, Monte Carlo %.5f ± %.5f", a.id, rw, want, mean, se)
		}
	}
}

func TestNoiseIsUniformAndNormal(t *testing.T) {
	const n = 200_000
	var s, s2, zs, zs2 float64
	for i := 0; i < n; i++ {
		u := u01(1, i, 3, drawError)
		require.True(t, u > 0 && u < 1)
		s += u
		s2 += u * u
		z := normal(1, i, 3)
		zs += z
		zs2 += z * z
	}
	assert.InDelta(t, 0.5, s/n, 0.003)
	assert.InDelta(t, 1.0/12, s2/n-(s/n)*(s/n), 0.002)
	assert.InDelta(t, 0, zs/n, 0.01)
	assert.InDelta(t, 1, zs2/n, 0.01)
	assert.NotEqual(t, u01(1, 5, 0, drawError), u01(1, 5, 1, drawError), "arms draw independently")
	assert.NotEqual(t, u01(1, 5, 0, drawError), u01(2, 5, 0, drawError), "seeds draw independently")
}

func TestTrafficRateAndMix(t *testing.T) {
	const src = `
name: tr
traffic:
  rate: 10
  bursts: [{from: 1000s, to: 2000s, multiplier: 3}]
  diurnal: {amplitude: 0.5, peak_hour: 12}
  tasks: {a: 3, b: 1}
  tenants: {x: 1, y: 1}
providers:
  - {name: p, latency: {median: 1s}, quality: {"*": 0.5}}
`
	sc, err := ParseScenario("tr", []byte(src))
	require.NoError(t, err)
	w := compile(sc)
	g := newTraffic(w, 1)
	var r request
	var inBurst, before, taskA, tenantX int
	const n = 200_000
	for i := 0; i < n; i++ {
		g.next(&r)
		switch {
		case r.t < 1000:
			before++
		case r.t < 2000:
			inBurst++
		}
		if r.task == 0 {
			taskA++
		}
		if r.tenant == 0 {
			tenantX++
		}
	}
	// Start at 00:00 UTC with the peak at 12:00: the first 2000s run at
	// about rate·(1−0.5·cos(small)) ≈ 5/s, tripled in the burst.
	lam := func(t0, t1 float64) float64 {
		var s float64
		for t := t0; t < t1; t++ {
			s += 10 * (1 + 0.5*math.Cos(2*math.Pi*(t/3600-12)/24))
		}
		return s
	}
	assert.InDelta(t, lam(0, 1000), float64(before), 4*math.Sqrt(lam(0, 1000)))
	assert.InDelta(t, 3*lam(1000, 2000), float64(inBurst), 4*math.Sqrt(3*lam(1000, 2000)))
	assert.InDelta(t, 0.75, float64(taskA)/n, 0.005)
	assert.InDelta(t, 0.5, float64(tenantX)/n, 0.005)
}

func TestSortLatencies(t *testing.T) {
	xs := []float32{3.5, 0.001, 1e6, 2, 2, 0, 77.25, 1e-3, 65536, 65535.5}
	sortLatencies(xs)
	assert.True(t, slices.IsSorted(xs), "%v", xs)
	assert.Equal(t, []float32{0, 0.001, 1e-3, 2, 2, 3.5, 77.25, 65535.5, 65536, 1e6}, xs)
	// Long inputs take the radix path.
	long := make([]float32, 100_000)
	for i := range long {
		long[i] = float32(u01(5, i, 0, 0) * 30000)
	}
	want := slices.Clone(long)
	slices.Sort(want)
	sortLatencies(long)
	assert.Equal(t, want, long)
}

func TestDriftContextualRemapsTasks(t *testing.T) {
	sc, err := LoadScenario("drift-contextual")
	require.NoError(t, err)
	w := compile(sc)
	coef := newRewardCoef(sc.RewardFunc())
	best := func(task string, at float64) string {
		r := request{t: at, task: slices.Index(w.tasks, task), tenant: 0, prompt: 600, compl: 200}
		bi, bv := -1, -1.0
		for i := range w.arms {
			p := w.arms[i].params(&r)
			if v := coef.expected(w, &w.arms[i], &p, &r); v > bv {
				bi, bv = i, v
			}
		}
		return w.arms[bi].id
	}
	for _, tc := range []struct{ task, before, after string }{
		{"code", "coder", "chatty"},
		{"math", "mathlete", "coder"},
		{"summarize", "summarizer", "mathlete"},
		{"chat", "chatty", "summarizer"},
	} {
		assert.Equal(t, tc.before, best(tc.task, 30*60), "%s before 40m", tc.task)
		assert.Equal(t, tc.after, best(tc.task, 50*60), "%s after 40m", tc.task)
	}
}

func TestModifiersMatch(t *testing.T) {
	const src = `
name: m
traffic: {rate: 1, tasks: {chat: 1, code: 1}, tenants: {x: 1, y: 1}}
providers:
  - name: p
    latency: {median: 1s}
    quality: {"*": 0.5}
    price_in: 1
    modifiers:
      - {when: {hours: [22, 6]}, price_multiplier: 0.5}
      - {when: {tasks: [code], min_prompt_tokens: 100, max_prompt_tokens: 200}, quality: {code: 0.9}}
      - {when: {tenants: [y], from: 1h, to: 2h}, outage: timeout, error_rate: 0.3}
      - {when: {from: 90m}, latency_multiplier: 2, price_multiplier: 3}
`
	sc, err := ParseScenario("m", []byte(src))
	require.NoError(t, err)
	w := compile(sc)
	a := &w.arms[0]
	code, chat := slices.Index(w.tasks, "code"), slices.Index(w.tasks, "chat")
	x, y := slices.Index(w.tenants, "x"), slices.Index(w.tenants, "y")
	for _, tc := range []struct {
		name string
		r    request
		want params
	}{
		{"nothing", request{t: 10, hour: 12, task: chat, tenant: x, prompt: 150}, params{quality: 0.5, priceMul: 1, latMul: 1}},
		{"night", request{t: 10, hour: 23, task: chat, tenant: x, prompt: 150}, params{quality: 0.5, priceMul: 0.5, latMul: 1}},
		{"early morning", request{t: 10, hour: 5, task: chat, tenant: x, prompt: 150}, params{quality: 0.5, priceMul: 0.5, latMul: 1}},
		{"6am is day", request{t: 10, hour: 6, task: chat, tenant: x, prompt: 150}, params{quality: 0.5, priceMul: 1, latMul: 1}},
		{"code in range", request{t: 10, hour: 12, task: code, tenant: x, prompt: 200}, params{quality: 0.9, priceMul: 1, latMul: 1}},
		{"code too long", request{t: 10, hour: 12, task: code, tenant: x, prompt: 201}, params{quality: 0.5, priceMul: 1, latMul: 1}},
		{"tenant y in window", request{t: 3700, hour: 1, task: chat, tenant: y, prompt: 150}, params{quality: 0.5, errRate: 0.3, priceMul: 0.5, latMul: 1, outage: decision.StatusTimeout, hasOutage: true}},
		{"tenant x in window", request{t: 3700, hour: 12, task: chat, tenant: x, prompt: 150}, params{quality: 0.5, priceMul: 1, latMul: 1}},
		{"late: both windows", request{t: 5500, hour: 12, task: chat, tenant: y, prompt: 150}, params{quality: 0.5, errRate: 0.3, priceMul: 3, latMul: 2, outage: decision.StatusTimeout, hasOutage: true}},
		{"after the outage", request{t: 7300, hour: 23, task: chat, tenant: y, prompt: 150}, params{quality: 0.5, priceMul: 1.5, latMul: 2}},
	} {
		assert.Equal(t, tc.want, a.params(&tc.r), tc.name)
	}
}

func TestRateLimitBucketOnVirtualTime(t *testing.T) {
	const src = `
name: rl
traffic: {rate: 1}
providers:
  - {name: p, latency: {median: 100ms}, rate_limit: {rps: 2, burst: 3}, fail_fast: 20ms, quality: {"*": 0.5}}
`
	sc, err := ParseScenario("rl", []byte(src))
	require.NoError(t, err)
	w := compile(sc)
	coef := newRewardCoef(sc.RewardFunc())
	a := &w.arms[0]
	var o decision.Outcome
	status := func(at float64, i int) (decision.Status, float64) {
		r := request{idx: i, t: at, tenant: -1, prompt: 10, compl: 10}
		p := a.params(&r)
		exp := coef.expected(w, a, &p, &r)
		done := w.act(1, 0, &p, &r, &o)
		if o.Status == decision.StatusRateLimited {
			assert.InDelta(t, at+0.02, done, 1e-12, "a 429 comes back after fail_fast")
		}
		return o.Status, exp
	}
	for i, at := range []float64{0, 0, 0} {
		st, exp := status(at, i)
		assert.Equal(t, decision.StatusOK, st, "request %d within the burst", i)
		assert.Positive(t, exp)
	}
	st, exp := status(0.1, 3)
	assert.Equal(t, decision.StatusRateLimited, st, "burst spent; 0.2 tokens refilled")
	assert.Zero(t, exp, "the oracle knows the bucket is empty: a 429 earns 0")
	st, _ = status(0.5, 4)
	assert.Equal(t, decision.StatusOK, st, "one token refilled by t=0.5")
	st, _ = status(0.6, 5)
	assert.Equal(t, decision.StatusRateLimited, st)
}

// TestQuadratureIsPrecise compares the oracle's Gauss–Hermite expectation
// with a 150-node reference of the same integrand, for latency shapes from
// narrow to heavy-tailed, with the default (linear) and a clamping reward.
func TestQuadratureIsPrecise(t *testing.T) {
	sc, err := ParseScenario("p", []byte(`
name: p
timeout: 100h
traffic: {rate: 1}
providers:
  - {name: s02, latency: {median: 300ms, sigma: 0.2, per_output_token: 5ms}, error_rate: 0.05, price_in: 0.001, quality: {"*": 0.7}}
  - {name: s06, latency: {median: 1s, sigma: 0.6, per_output_token: 10ms}, quality: {"*": 0.9}}
  - {name: s10, latency: {median: 2s, sigma: 1.0}, error_rate: 0.2, quality: {"*": 0.5}}
  - {name: s15, latency: {median: 1s, sigma: 1.5}, quality: {"*": 0.6}}
`))
	require.NoError(t, err)
	w := compile(sc)
	for _, rw := range []decision.Reward{sc.RewardFunc(), {Quality: 0.7, Cost: 0.3, Latency: 0.5, Failure: 0.1, CostRef: 0.01, LatencyRef: 1e9, UnknownQuality: 0.5}} {
		c := newRewardCoef(rw)
		for ai := range w.arms {
			a := &w.arms[ai]
			r := request{tenant: -1, prompt: 500, compl: 200}
			p := a.params(&r)
			b := float64(r.prompt)*a.perIn + float64(r.compl)*a.perOut
			cost := float64(r.prompt)*a.priceIn + float64(r.compl)*a.priceOut
			costTerm := c.wc / (1 + cost/c.cref)
			ref := quad.Fixed(func(x float64) float64 {
				l := math.Exp(a.mu+a.sigma*math.Sqrt2*x) + b
				return c.answered(l, p.quality, p.errRate, costTerm) / math.SqrtPi
			}, math.Inf(-1), math.Inf(1), 150, quad.Hermite{}, 0)
			got := c.expected(w, a, &p, &r)
			tol := 1e-6
			if a.sigma > 1 {
				tol = 1e-5 // 12 nodes resolve a very wide log-normal less finely
			}
			assert.InDelta(t, ref, got, tol, "arm %s reward %+v", a.id, rw)
			t.Logf("%s: %.9f vs reference %.9f", a.id, got, ref)
		}
	}
}
