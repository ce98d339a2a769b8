package fromlogs_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
	"github.com/routelab/routelab/sim/fromlogs"
)

// calScenario: three providers that differ in latency shape, per-token
// times, error rates (one with bad hours), slow hours (another), prices and
// quality per task.
// 40k requests at 1.5/s span about 7.4 hours, so hourly effects show.
const calScenario = `
name: cal-source
requests: 40000
start: "2026-01-05T00:00:00Z"
traffic:
  rate: 1.5
  tasks: {chat: 2, code: 1, math: 1}
  prompt_tokens: {median: 800, sigma: 0.6, max: 16000}
  completion_tokens: {median: 250, sigma: 0.5, max: 3000}
providers:
  - name: fast
    price_in: 0.0002
    price_out: 0.0006
    latency: {median: 150ms, sigma: 0.25, per_prompt_token: 0.05ms, per_output_token: 4ms}
    error_rate: 0.01
    quality: {"*": 0.55, chat: 0.7}
  - name: smart
    price_in: 0.003
    price_out: 0.015
    latency: {median: 600ms, sigma: 0.4, per_prompt_token: 0.2ms, per_output_token: 20ms}
    error_rate: 0.03
    quality: {"*": 0.9, chat: 0.85}
    modifiers:
      - when: {hours: [3, 5]}
        error_rate: 0.25
  - name: mid
    price_in: 0.001
    price_out: 0.003
    latency: {median: 350ms, sigma: 0.6, per_output_token: 10ms}
    error_rate: 0.05
    quality: {"*": 0.75, math: 0.6}
    modifiers:
      - when: {hours: [1, 3]}
        latency_multiplier: 1.5
`

// armMetrics are the per-provider figures the round trip must reproduce.
type armMetrics struct {
	p50, p99, failRate, quality float64
}

func perArm(recs replay.Records) map[string]armMetrics {
	lat := map[string][]float64{}
	att, fail, qs, qn := map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	for i := range recs {
		o := &recs[i].Outcome
		attempts := o.Attempts
		if len(attempts) == 0 {
			attempts = []decision.Attempt{{Arm: o.Arm, Status: o.Status}}
		}
		for _, a := range attempts {
			att[a.Arm]++
			if a.Status.Failed() {
				fail[a.Arm]++
			}
		}
		if o.Status == decision.StatusOK {
			lat[o.Arm] = append(lat[o.Arm], o.Latency.Seconds()*1000)
			if o.QualityKnown {
				qs[o.Arm] += o.Quality
				qn[o.Arm]++
			}
		}
	}
	out := map[string]armMetrics{}
	for arm, l := range lat {
		slices.Sort(l)
		out[arm] = armMetrics{p50: l[len(l)/2], p99: l[len(l)*99/100], failRate: fail[arm] / att[arm], quality: qs[arm] / qn[arm]}
	}
	return out
}

// simRecords logs n requests (0: the scenario's default) of sc routed
// uniformly at random.
func simRecords(t *testing.T, sc *sim.Scenario, seed uint64, n int) replay.Records {
	t.Helper()
	sink := &collect{}
	sinkAttempts := &attemptsSink{inner: sink}
	_, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: policy.NewRandom(policy.RandomOpts{Seed: seed}), Seed: seed, Requests: n, Sink: sinkAttempts})
	require.NoError(t, err)
	return replay.Records(sink.Recs)
}

// attemptsSink keeps the attempt chain, which collect drops.
type attemptsSink struct{ inner *collect }

func (s *attemptsSink) Log(rec *decision.Record) {
	s.inner.Log(rec)
	last := &s.inner.Recs[len(s.inner.Recs)-1]
	last.Outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
}

// TestCalibrationRoundTrip: logs from scenario S → Calibrate → simulate the
// fitted scenario → per-provider latency p50/p99, failure rate and quality
// within stated tolerances of S's logs; the fitted YAML parses back.
func TestCalibrationRoundTrip(t *testing.T) {
	t.Parallel()
	src, err := sim.ParseScenario("cal-source", []byte(calScenario))
	require.NoError(t, err)
	orig := simRecords(t, src, 11, 0)
	cal, err := fromlogs.Calibrate(context.Background(), orig, fromlogs.CalibrateOpts{Seed: 1})
	require.NoError(t, err)
	for _, f := range cal.Arms {
		t.Logf("fit %-5s ok %5d median %.0fms sigma %.3f in %.3fms/tok out %.2fms/tok err %.3f price %.4f/%.4f KS lat %.3f ttft %.3f q %v hourly failure %v latency %v",
			f.Arm, f.OK, f.MedianMS, f.Sigma, f.PerPromptTokenMS, f.PerOutputTokenMS, f.ErrorRate, f.PriceIn, f.PriceOut, f.KSLatency, f.KSTTFT, f.Quality, f.HourlyFailure, f.HourlyLatency)
		assert.Less(t, f.KSLatency, 0.03, "%s: KS distance of latency", f.Arm)
		assert.Less(t, f.KSTTFT, 0.03, "%s: KS distance of TTFT", f.Arm)
	}
	for _, n := range cal.Notes {
		t.Log("note:", n)
	}
	// The fitted scenario round-trips through YAML.
	y, err := yaml.Marshal(cal.Scenario)
	require.NoError(t, err)
	back, err := sim.ParseScenario("fitted", y)
	require.NoError(t, err, string(y))

	// Another seed: the fitted world must match in distribution, not by
	// sharing the source run's latent draws.
	fitted := simRecords(t, back, 12, 0)
	want, got := perArm(orig), perArm(fitted)
	require.Len(t, got, 3)
	for arm, w := range want {
		g := got[arm]
		t.Logf("%-5s p50 %6.0f/%6.0f ms  p99 %6.0f/%6.0f ms  fail %.4f/%.4f  quality %.3f/%.3f (source/fitted)", arm, w.p50, g.p50, w.p99, g.p99, w.failRate, g.failRate, w.quality, g.quality)
		assert.InDelta(t, 1, g.p50/w.p50, 0.05, "%s latency p50", arm)
		assert.InDelta(t, 1, g.p99/w.p99, 0.10, "%s latency p99", arm)
		assert.InDelta(t, w.failRate, g.failRate, 0.01, "%s failure rate", arm)
		assert.InDelta(t, w.quality, g.quality, 0.02, "%s quality", arm)
	}
	// The bad hours of "smart" and the slow hours of "mid" are found.
	for _, f := range cal.Arms {
		if f.Arm == "mid" {
			assert.InDelta(t, 1.5, f.HourlyLatency[1], 0.05)
			assert.InDelta(t, 1.5, f.HourlyLatency[2], 0.05)
			assert.Len(t, f.HourlyLatency, 2, "only hours 1 and 2 are slow: %v", f.HourlyLatency)
			assert.InDelta(t, 350, f.MedianMS, 15, "base median of the typical hour")
		} else {
			assert.Empty(t, f.HourlyLatency, f.Arm)
		}
		if f.Arm == "smart" {
			assert.InDelta(t, 0.25, f.HourlyFailure[3], 0.05)
			assert.InDelta(t, 0.25, f.HourlyFailure[4], 0.05)
			assert.NotContains(t, f.HourlyFailure, 1)
			assert.InDelta(t, 0.003, f.PriceIn, 1e-6)
			assert.InDelta(t, 0.015, f.PriceOut, 1e-6)
		}
	}
	assert.InDelta(t, 1.5, cal.Scenario.Traffic.Rate, 0.05)
	assert.InDelta(t, 0.5, cal.Scenario.Traffic.Tasks["chat"]/float64(len(orig)), 0.02)
	assert.False(t, math.IsNaN(cal.Scenario.Traffic.PromptTokens.Median))
}

func TestCalibrateErrors(t *testing.T) {
	_, err := fromlogs.Calibrate(context.Background(), replay.Records{}, fromlogs.CalibrateOpts{})
	assert.ErrorContains(t, err, "no rows")
	_, err = fromlogs.Calibrate(context.Background(), tinyLog(), fromlogs.CalibrateOpts{})
	assert.ErrorContains(t, err, "no request time")
}

// TestCalibrateFindsOutage: on the built-in outage scenario ("balanced"
// fails every request from 10 to 20 minutes), calibration finds the window
// to within a bin or two and the fitted simulator reproduces the failure
// rate per provider. 20k requests at 10/s cover the first 33 minutes.
func TestCalibrateFindsOutage(t *testing.T) {
	t.Parallel()
	src, err := sim.LoadScenario("outage")
	require.NoError(t, err)
	orig := simRecords(t, src, 21, 20_000)
	cal, err := fromlogs.Calibrate(context.Background(), orig, fromlogs.CalibrateOpts{Seed: 1})
	require.NoError(t, err)
	for _, f := range cal.Arms {
		t.Logf("%-8s err %.4f outages %+v hourly %v", f.Arm, f.ErrorRate, f.Outages, f.HourlyFailure)
		if f.Arm != "balanced" {
			assert.Empty(t, f.Outages, f.Arm)
			continue
		}
		require.Len(t, f.Outages, 1)
		o := f.Outages[0]
		assert.InDelta(t, 600, o.From, 20)
		assert.InDelta(t, 1200, o.To, 20)
		assert.Equal(t, "error", o.Status)
	}
	y, err := yaml.Marshal(cal.Scenario)
	require.NoError(t, err)
	back, err := sim.ParseScenario("fitted", y)
	require.NoError(t, err)
	want, got := perArm(orig), perArm(simRecords(t, back, 22, 20_000))
	for arm, w := range want {
		g := got[arm]
		t.Logf("%-8s fail %.4f/%.4f p50 %.0f/%.0f (source/fitted)", arm, w.failRate, g.failRate, w.p50, g.p50)
		assert.InDelta(t, w.failRate, g.failRate, 0.01, "%s failure rate", arm)
		assert.InDelta(t, 1, g.p50/w.p50, 0.05, "%s latency p50", arm)
	}
}

// TestCalibrateDiurnalAndPrices: synthetic logs over 2 days and 5 hours
// (a partial day, so some hours are seen three times) of a diurnal arrival
// process (base 0.3/s, amplitude 0.5, peak 15:00) from an arm sold at half
// price from 22:00 to 06:00. The fit recovers the curve, the base rate and
// the day prices with the night multiplier.
func TestCalibrateDiurnalAndPrices(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	end := start.Add(53 * time.Hour)
	const base, amp, peak = 0.3, 0.5, 15.0
	var log replay.Records
	cands := arms("a")
	for ts := 0.0; ; {
		ts += rng.ExpFloat64() / (base * (1 + amp))
		at := start.Add(time.Duration(ts * float64(time.Second)))
		if !at.Before(end) {
			break
		}
		h := float64(at.Hour()) + float64(at.Minute())/60
		if rng.Float64()*(1+amp) >= 1+amp*math.Cos(2*math.Pi*(h-peak)/24) {
			continue
		}
		in, out := 100+rng.IntN(900), 50+rng.IntN(400)
		mul := 1.0
		if at.Hour() >= 22 || at.Hour() < 6 {
			mul = 0.5
		}
		lat := 200*time.Millisecond + time.Duration(out)*5*time.Millisecond
		log = append(log, decision.Record{
			Request:  decision.Request{ID: "x", Features: decision.Features{Task: "chat", PromptTokens: in, Time: at}},
			Decision: decision.Decision{Candidates: cands, Probs: []float64{1}},
			Outcome: decision.Outcome{Arm: "a", Latency: lat, TTFT: 200 * time.Millisecond, TokensIn: in, TokensOut: out,
				Cost: mul * (float64(in)*0.001 + float64(out)*0.002) / 1000, Quality: 1, QualityKnown: true},
			Reward: 1,
		})
	}
	cal, err := fromlogs.Calibrate(context.Background(), log, fromlogs.CalibrateOpts{})
	require.NoError(t, err)
	d := cal.Scenario.Traffic.Diurnal
	require.NotNil(t, d)
	assert.InDelta(t, amp, d.Amplitude, 0.03)
	assert.InDelta(t, peak, d.PeakHour, 0.3)
	assert.InDelta(t, base, cal.Scenario.Traffic.Rate, 0.01)
	f := cal.Arms[0]
	assert.InDelta(t, 0.001, f.PriceIn, 1e-9)
	assert.InDelta(t, 0.002, f.PriceOut, 1e-9)
	assert.Len(t, f.HourlyPrice, 8, "%v", f.HourlyPrice)
	assert.InDelta(t, 0.5, f.HourlyPrice[23], 1e-9)
	assert.InDelta(t, 0.5, f.HourlyPrice[3], 1e-9)
	assert.InDelta(t, 5, f.PerOutputTokenMS, 1e-6)
	assert.InDelta(t, 1, f.Quality["chat"], 0)
}
