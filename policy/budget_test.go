package policy_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// budgetArms predict half of what the models really cost (realCost): a
// router that trusted its predictions would spend twice its budget.
var (
	budgetArms = []policy.RouterArm{
		{ID: "cheap", Quality: []float64{0.7}, Cost: []float64{0.0005}},
		{ID: "dear", Quality: []float64{0.9}, Cost: []float64{0.005}},
	}
	realCost    = map[string]float64{"cheap": 0.001, "dear": 0.01}
	budgetCands = []decision.Arm{{ID: "cheap"}, {ID: "dear"}}
)

// streamSpend routes n requests of tenant arriving at times at(i), with
// each request's realised cost fed back (ObserveSpend) delay requests
// later (never when observe is false), and returns the realised cost of
// every request.
func streamSpend(t *testing.T, p *policy.LinearRouter, n, delay int, observe bool, at func(i int) time.Time) []float64 {
	t.Helper()
	probs := make([]float64, 2)
	type done struct {
		f   *decision.Features
		arm string
	}
	var inFlight []done
	costs := make([]float64, n)
	for i := range n {
		f := &decision.Features{Tenant: "t", Vector: []float64{1}, Time: at(i)}
		c, err := p.Select(context.Background(), f, budgetCands, probs)
		require.NoError(t, err)
		arm := budgetCands[c].ID
		costs[i] = realCost[arm]
		inFlight = append(inFlight, done{f, arm})
		if len(inFlight) > delay {
			d := inFlight[0]
			inFlight = inFlight[1:]
			if observe {
				p.ObserveSpend(d.f, d.arm, true, realCost[d.arm])
			}
		}
	}
	return costs
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// TestBudgetHoldsOnObservedSpend: with cost predictions half the truth and
// the realised cost arriving 50 requests late, the dual price on observed
// spend holds the realised mean spend within 3% of the per-request budget
// over 20,000 requests; on predictions alone the same router spends far
// more.
func TestBudgetHoldsOnObservedSpend(t *testing.T) {
	const budget, n = 0.004, 20000
	noTime := func(int) time.Time { return time.Time{} }
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms, Budget: policy.BudgetSpec{PerRequest: budget}})
	require.NoError(t, err)
	got := mean(streamSpend(t, p, n, 50, true, noTime))
	assert.InEpsilon(t, budget, got, 0.03, "realised mean spend per request, got %v want %v ± 3%%", got, budget)

	blind, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms, Budget: policy.BudgetSpec{PerRequest: budget}})
	require.NoError(t, err)
	gotBlind := mean(streamSpend(t, blind, n, 50, false, noTime))
	assert.Greater(t, gotBlind, 1.5*budget, "on predicted spend alone the budget is overrun: got %v", gotBlind)
}

// TestBudgetWindow: a limit of $10 per hour, with arrivals at about 1 per
// second for two hours and then about 2 per second (biased predictions,
// late feedback): every hour's realised spend stays within 3% above the
// limit, and every hour after the first uses at least 90% of it.
func TestBudgetWindow(t *testing.T) {
	const limit = 10.0
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms,
		Budget: policy.BudgetSpec{Window: time.Hour, Limit: limit}})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var times []time.Time
	for at := start; at.Before(start.Add(4 * time.Hour)); {
		times = append(times, at)
		rate := 1.0
		if at.Sub(start) >= 2*time.Hour {
			rate = 2
		}
		at = at.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
	}
	costs := streamSpend(t, p, len(times), 20, true, func(i int) time.Time { return times[i] })
	perHour := make([]float64, 4)
	for i, c := range costs {
		perHour[int(times[i].Sub(start)/time.Hour)] += c
	}
	for h, s := range perHour {
		assert.LessOrEqual(t, s, limit*1.03, "hour %d: spent $%.3f of $%g", h, s, limit)
		if h > 0 {
			assert.GreaterOrEqual(t, s, limit*0.9, "hour %d: spent $%.3f of $%g", h, s, limit)
		}
	}
	t.Logf("spend per hour: %.3f", perHour)

	// The window's accounts survive a snapshot.
	var buf bytes.Buffer
	require.NoError(t, p.Snapshot(&buf))
	q, err := policy.Load(policy.NewBuiltinRegistry(), bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	var buf2 bytes.Buffer
	require.NoError(t, q.(policy.Snapshotter).Snapshot(&buf2))
	assert.JSONEq(t, buf.String(), buf2.String())
}

// TestBudgetExhaustedWindow: once a window's spend reaches its limit the
// router sends everything to the cheapest model until the window ends.
func TestBudgetExhaustedWindow(t *testing.T) {
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms,
		Budget: policy.BudgetSpec{Window: time.Minute, Limit: 0.02}})
	require.NoError(t, err)
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	f := &decision.Features{Tenant: "t", Vector: []float64{1}, Time: t0.Add(50 * time.Second)}
	// A forced request (not routed) spends the whole window.
	p.ObserveSpend(f, "dear", false, 0.021)
	probs := make([]float64, 2)
	c, err := p.Select(context.Background(), &decision.Features{Tenant: "t", Vector: []float64{1}, Time: t0.Add(55 * time.Second)}, budgetCands, probs)
	require.NoError(t, err)
	assert.Equal(t, "cheap", budgetCands[c].ID, "exhausted window")
	c, err = p.Select(context.Background(), &decision.Features{Tenant: "t", Vector: []float64{1}, Time: t0.Add(61 * time.Second)}, budgetCands, probs)
	require.NoError(t, err)
	assert.Equal(t, "dear", budgetCands[c].ID, "next window")
	c, err = p.Select(context.Background(), &decision.Features{Tenant: "u", Vector: []float64{1}, Time: t0.Add(30 * time.Second)}, budgetCands, probs)
	require.NoError(t, err)
	assert.Equal(t, "dear", budgetCands[c].ID, "another tenant's window")
}

// TestBudgetTenantOverride: a tenant's own limit replaces the default.
func TestBudgetTenantOverride(t *testing.T) {
	lift := 0.0
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms, Budget: policy.BudgetSpec{PerRequest: 0.002,
		Tenants: map[string]policy.TenantBudget{"rich": {PerRequest: &lift}}}})
	require.NoError(t, err)
	probs := make([]float64, 2)
	for range 500 {
		for _, tenant := range []string{"rich", "poor"} {
			f := &decision.Features{Tenant: tenant, Vector: []float64{1}}
			c, err := p.Select(context.Background(), f, budgetCands, probs)
			require.NoError(t, err)
			p.ObserveSpend(f, budgetCands[c].ID, true, realCost[budgetCands[c].ID])
		}
	}
	assert.Zero(t, p.Price("rich"), "no limit for rich")
	assert.Greater(t, p.Price("poor"), 0.0)
	// The override travels in the spec's parameters.
	var buf bytes.Buffer
	require.NoError(t, p.Snapshot(&buf))
	q, err := policy.Load(policy.NewBuiltinRegistry(), bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	got := q.(policy.Budgeted).BudgetSpec()
	require.Contains(t, got.Tenants, "rich")
	assert.Equal(t, 0.0, *got.Tenants["rich"].PerRequest)
	assert.Nil(t, got.Tenants["rich"].Limit)
}

// TestBudgetBadConfig: every bad budget is an error naming the field.
func TestBudgetBadConfig(t *testing.T) {
	neg := -1.0
	for _, tc := range []struct {
		name string
		spec policy.BudgetSpec
		want string
	}{
		{"negative per request", policy.BudgetSpec{PerRequest: -0.1}, "budget.per_request: -0.1 must be"},
		{"negative limit", policy.BudgetSpec{Window: time.Hour, Limit: -5}, "budget.limit: -5 must be"},
		{"zero window", policy.BudgetSpec{Limit: 5}, "budget.window: a limit per window needs a window > 0"},
		{"negative window", policy.BudgetSpec{Window: -time.Hour, Limit: 5}, "budget.window: -1h0m0s must be > 0"},
		{"window without limit", policy.BudgetSpec{Window: time.Hour}, "budget.limit: window 1h0m0s needs a limit > 0"},
		{"eta", policy.BudgetSpec{PerRequest: 1, Eta: 2}, "budget.eta: 2 must be in [0, 1]"},
		{"tenant", policy.BudgetSpec{PerRequest: 1, Tenants: map[string]policy.TenantBudget{"a": {Limit: &neg}}}, "budget.tenants.a.limit: -1 must be"},
	} {
		assert.ErrorContains(t, tc.spec.Validate(), tc.want, tc.name)
		_, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Budget: tc.spec})
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
	for in, want := range map[string]string{
		"per_request=0.1,cap=3":       `unknown key "cap"`,
		"window=1h,limit=-2":          "budget.limit: -2 must be",
		"window=0s,limit=2":           "budget.window: a limit per window needs a window > 0",
		"window=soon,limit=2":         `window "soon" is not a duration`,
		"per_request":                 "is not key=value",
		"per_request=1,per_request=2": "per_request given twice",
	} {
		_, err := policy.ParseBudget(in)
		assert.ErrorContains(t, err, want, in)
	}
	b, err := policy.ParseBudget("0.002")
	require.NoError(t, err)
	assert.Equal(t, 0.002, b.PerRequest)
	b, err = policy.ParseBudget("window=30m,limit=2.5,eta=0.01")
	require.NoError(t, err)
	assert.Equal(t, policy.BudgetSpec{Window: 30 * time.Minute, Limit: 2.5, Eta: 0.01}, b)

	// The YAML block rejects unknown keys (strict decoding, as the gateway
	// config and scenarios decode).
	var spec policy.BudgetSpec
	dec := yaml.NewDecoder(bytes.NewReader([]byte("per_request: 0.1\nlimt: 3\n")))
	dec.KnownFields(true)
	assert.ErrorContains(t, dec.Decode(&spec), "field limt not found")
	require.NoError(t, yaml.Unmarshal([]byte("window: 1h\nlimit: 5\ntenants: {acme: {limit: 20}}\n"), &spec))
	require.NoError(t, spec.Validate())
	assert.Equal(t, time.Hour, spec.Window)
	assert.Equal(t, 20.0, *spec.Tenants["acme"].Limit)

	_, err = policy.NewBuiltinRegistry().New(policy.Spec{Name: "linear-router", Params: policy.Params{"dim": "1", "eta": "0.05"}})
	assert.ErrorContains(t, err, "eta", "the old eta parameter is gone (budget_eta has another scale)")
}

// TestBudgetConcurrent: Select, ObserveSpend, SetBudget and Snapshot from
// many goroutines (run with -race).
func TestBudgetConcurrent(t *testing.T) {
	p, err := policy.NewLinearRouter(policy.LinearRouterOpts{Dim: 1, Arms: budgetArms, Budget: policy.BudgetSpec{PerRequest: 0.004}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probs := make([]float64, 2)
			for i := range 300 {
				f := &decision.Features{Tenant: []string{"a", "b"}[g%2], Vector: []float64{1}, Time: t0.Add(time.Duration(i) * time.Second)}
				c, err := p.Select(context.Background(), f, budgetCands, probs)
				if err != nil {
					t.Error(err)
					return
				}
				p.ObserveSpend(f, budgetCands[c].ID, true, realCost[budgetCands[c].ID])
				if i%100 == 0 {
					var buf bytes.Buffer
					if err := p.Snapshot(&buf); err != nil {
						t.Error(err)
					}
					if err := p.SetBudget(policy.BudgetSpec{PerRequest: 0.004, Window: time.Hour, Limit: 100}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.Greater(t, p.Price("a"), 0.0)
}
