package route_test

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/route"
)

// mixed is a test policy choosing candidate i with fixed probability q[i];
// its learned state is a sum per arm (count and reward sum), like the
// sufficient statistics of ε-greedy, UCB or Thompson.
type mixed struct {
	name string
	q    []float64
	mu   sync.Mutex
	rng  *rand.Rand
	n    []float64
	sum  []float64
}

func newMixed(name string, seed uint64, q ...float64) *mixed {
	return &mixed{name: name, q: q, rng: rand.New(rand.NewPCG(seed, 1)), n: make([]float64, len(q)), sum: make([]float64, len(q))}
}

func (p *mixed) Name() string { return p.name }

func (p *mixed) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	copy(probs, p.q)
	p.mu.Lock()
	u := p.rng.Float64()
	p.mu.Unlock()
	for i, q := range p.q {
		if u < q {
			return i, nil
		}
		u -= q
	}
	return len(cands) - 1, nil
}

func (p *mixed) Update(_ *decision.Features, _ []decision.Arm, chosen int, reward float64) error {
	p.mu.Lock()
	p.n[chosen]++
	p.sum[chosen] += reward
	p.mu.Unlock()
	return nil
}

// drive routes n requests through core with Bernoulli(mu[arm]) rewards.
func drive(t *testing.T, core *route.Core, n int, mu []float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	var d decision.Decision
	for range n {
		req := decision.Request{}
		require.NoError(t, core.Decide(context.Background(), &req, &d))
		r := 0.0
		if rng.Float64() < mu[d.Chosen] {
			r = 1
		}
		require.NoError(t, core.Learn(&req.Features, &d, r))
	}
}

// TestShadowWeightedLearningMatchesOnPolicy: a shadow learning weighted from
// another policy's traffic ends with the statistics of the same policy
// trained on its own choices (within 4 standard errors of the difference,
// computed from the two sampling schemes), while matched-only learning is
// far off (it sees arm a at rate p_a·q_a instead of q_a) and frozen learns
// nothing.
func TestShadowWeightedLearningMatchesOnPolicy(t *testing.T) {
	const n = 20000
	p := []float64{0.6, 0.3, 0.1} // serving
	q := []float64{0.1, 0.2, 0.7} // shadow; q/p ≤ 7 < the default cap
	mu := []float64{0.3, 0.5, 0.8}

	onPolicy := newMixed("shadow", 11, q...)
	solo, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: onPolicy})
	require.NoError(t, err)
	drive(t, solo, n, mu, 5)

	run := func(mode route.ShadowLearnMode) *mixed {
		sh := newMixed("shadow", 12, q...)
		core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: newMixed("serving", 13, p...), Shadow: sh,
			ShadowLearn: route.ShadowLearnOpts{Mode: mode, Seed: 9}})
		require.NoError(t, err)
		drive(t, core, n, mu, 6)
		return sh
	}
	weighted, matched, frozen := run(""), run(route.ShadowMatched), run(route.ShadowFrozen)

	for a := range p {
		// Per request, the weighted count of arm a is X = 1[A=a]·K with
		// K = ⌊w⌋ + Bernoulli(frac w), w = q/p: E[X] = q, E[X²] = p·E[K²].
		w := q[a] / p[a]
		fl, fr := math.Floor(w), w-math.Floor(w)
		ek2 := fl*fl + (2*fl+1)*fr
		varW := p[a]*ek2 - q[a]*q[a]
		varOn := q[a] * (1 - q[a])
		tolN := 4 * math.Sqrt(n*(varW+varOn))
		// Reward sums: X·r with r ∈ {0,1}: E = q·μ, E[(Xr)²] = p·E[K²]·μ.
		varWS := p[a]*ek2*mu[a] - math.Pow(q[a]*mu[a], 2)
		varOnS := q[a]*mu[a] - math.Pow(q[a]*mu[a], 2)
		tolS := 4 * math.Sqrt(n*(varWS+varOnS))

		assert.InDelta(t, onPolicy.n[a], weighted.n[a], tolN, "arm %d count: weighted shadow %v, on-policy %v", a, weighted.n[a], onPolicy.n[a])
		assert.InDelta(t, onPolicy.sum[a], weighted.sum[a], tolS, "arm %d reward sum: weighted shadow %v, on-policy %v", a, weighted.sum[a], onPolicy.sum[a])
		assert.Greater(t, math.Abs(matched.n[a]-onPolicy.n[a]), tolN, "arm %d: matched-only count %v is biased against on-policy %v", a, matched.n[a], onPolicy.n[a])
		assert.Zero(t, frozen.n[a], "frozen shadow never learns")
	}
}

// weightedPolicy records the weights UpdateWeighted receives.
type weightedPolicy struct {
	*mixed
	ws []float64
}

func (p *weightedPolicy) UpdateWeighted(_ *decision.Features, _ []decision.Arm, _ int, _, w float64) error {
	p.ws = append(p.ws, w)
	return nil
}

func TestShadowWeightedUpdaterGetsCappedWeight(t *testing.T) {
	sh := &weightedPolicy{mixed: newMixed("shadow", 1, 0, 0, 1)}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: newMixed("serving", 2, 0.5, 0.4, 0.1), Shadow: sh,
		ShadowLearn: route.ShadowLearnOpts{MaxWeight: 4}})
	require.NoError(t, err)
	drive(t, core, 500, []float64{0.5, 0.5, 0.5}, 3)
	require.NotEmpty(t, sh.ws)
	for _, w := range sh.ws {
		assert.Equal(t, 4.0, w, "w = 1/0.1 = 10 capped at 4")
	}
	assert.Zero(t, sh.n[0]+sh.n[1]+sh.n[2], "Update is not called when UpdateWeighted is there")
	assert.InDelta(t, 50, len(sh.ws), 25, "only requests serving arm c (p = 0.1) have w > 0")
}

func TestShadowLearnOptsValidation(t *testing.T) {
	for _, o := range []route.ShadowLearnOpts{{Mode: "sometimes"}, {MaxWeight: 0.5}, {MaxWeight: math.Inf(1)}, {MaxWeight: math.NaN()}} {
		_, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: newMixed("s", 1, 1, 0, 0), ShadowLearn: o})
		assert.Error(t, err, "%+v", o)
	}
	m, err := route.ParseShadowLearnMode("")
	require.NoError(t, err)
	assert.Equal(t, route.ShadowWeighted, m, "the default is weighted")
}
