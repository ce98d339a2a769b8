package policy_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func arms(k int) []policy.Arm {
	out := make([]policy.Arm, k)
	for i := range out {
		out[i] = policy.Arm{ID: fmt.Sprintf("m%d", i), PriceIn: 0.001 * float64(i+1), PriceOut: 0.002 * float64(i+1), LatencyMS: 100 * float64(i+1), Quality: 0.5 + 0.05*float64(i)}
	}
	return out
}

func builtins(t testing.TB) map[string]policy.Policy {
	reg := policy.NewBuiltinRegistry()
	out := map[string]policy.Policy{}
	for _, n := range reg.Names() {
		p, err := reg.New(policy.Spec{Name: n, Params: policy.Params{}})
		require.NoError(t, err, n)
		out[n] = p
	}
	return out
}

func TestPropensitiesSumToOneAndChosenHasMass(t *testing.T) {
	ctx := context.Background()
	cands := arms(5)
	for name, p := range builtins(t) {
		t.Run(name, func(t *testing.T) {
			probs := make([]float64, len(cands))
			for step := 0; step < 500; step++ {
				c, err := p.Select(ctx, &policy.Features{}, cands, probs)
				require.NoError(t, err)
				sum := 0.0
				for _, q := range probs[:len(cands)] {
					assert.GreaterOrEqual(t, q, 0.0)
					sum += q
				}
				assert.InDelta(t, 1, sum, 1e-9, "sum of propensities")
				assert.Greater(t, probs[c], 0.0, "chosen arm %d has zero propensity", c)
				require.NoError(t, p.Update(&policy.Features{}, cands, c, float64(c)/5))
			}
		})
	}
}

func TestBadInputIsAnError(t *testing.T) {
	ctx := context.Background()
	cands := arms(3)
	for name, p := range builtins(t) {
		t.Run(name, func(t *testing.T) {
			_, err := p.Select(ctx, &policy.Features{}, nil, make([]float64, 3))
			assert.ErrorIs(t, err, policy.ErrNoCandidates)
			_, err = p.Select(ctx, &policy.Features{}, cands, make([]float64, 2))
			assert.ErrorIs(t, err, policy.ErrProbsTooShort)
			assert.ErrorIs(t, p.Update(nil, cands, 0, math.NaN()), policy.ErrBadReward)
			assert.ErrorIs(t, p.Update(nil, cands, 0, math.Inf(1)), policy.ErrBadReward)
			assert.ErrorIs(t, p.Update(nil, cands, 3, 0.5), policy.ErrBadChosen)
		})
	}
}

func TestRegistryErrorsNameTheProblem(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	for _, tc := range []struct{ spec, want string }{
		{"nope", `unknown policy "nope"`},
		{"epsilon-greedy=epsilon:1.5", "epsilon 1.5 outside [0,1]"},
		{"epsilon-greedy=epsilon:abc", `parameter "epsilon": "abc" is not a finite number`},
		{"thompson=modle:beta", `unknown parameter "modle"`},
		{"thompson=model:poisson", `"poisson" is not beta or gaussian`},
		{"ucb1=c", `parameter "c" is not key:value`},
		{"=x:1", "empty policy name"},
	} {
		_, err := reg.NewFromString(tc.spec)
		require.Error(t, err, tc.spec)
		assert.Contains(t, err.Error(), tc.want, tc.spec)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	s, err := policy.ParseSpec("thompson=model:gaussian;seed:7")
	require.NoError(t, err)
	assert.Equal(t, "thompson", s.Name)
	assert.Equal(t, policy.Params{"model": "gaussian", "seed": "7"}, s.Params)
	assert.Equal(t, "thompson=model:gaussian;seed:7", s.String())
	specs, err := policy.ParseSpecs("random,ucb1=c:0.5")
	require.NoError(t, err)
	assert.Len(t, specs, 2)
}

func TestWeightedPrefersFastAccurateCheap(t *testing.T) {
	w := policy.NewWeighted()
	cands := []policy.Arm{
		{ID: "slow-bad-dear", LatencyMS: 2000, Quality: 0.5, PriceIn: 0.01, PriceOut: 0.03},
		{ID: "fast-good-cheap", LatencyMS: 200, Quality: 0.9, PriceIn: 0.0005, PriceOut: 0.0015},
	}
	probs := make([]float64, 2)
	c, err := w.Select(context.Background(), &policy.Features{PromptTokens: 500}, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 1, c)
	assert.Equal(t, []float64{0, 1}, probs)
	// Weights as documented: the scores sum to latency+accuracy+cost weights.
	scores := make([]float64, 2)
	w.Score(&policy.Features{PromptTokens: 500}, cands, scores)
	assert.InDelta(t, 1.0, scores[0]+scores[1], 1e-9)
	assert.InDelta(t, 0.4*(1.0/200)/(1.0/200+1.0/2000)+0.5*0.9/1.4, scores[1]-0.1*scores1Cost(cands, 500), 1e-9)
}

func scores1Cost(c []policy.Arm, in int) float64 {
	cost := func(a policy.Arm) float64 { return (float64(in)*a.PriceIn + 256*a.PriceOut) / 1000 }
	return (1 / cost(c[1])) / (1/cost(c[0]) + 1/cost(c[1]))
}

func TestEpsilonGreedyPropensitiesMatchFrequencies(t *testing.T) {
	p, err := policy.NewEpsilonGreedy(0.3, 42)
	require.NoError(t, err)
	cands := arms(4)
	f := &policy.Features{}
	for i := range cands {
		require.NoError(t, p.Update(f, cands, i, 0.1*float64(i)))
	}
	probs := make([]float64, 4)
	counts := make([]float64, 4)
	const n = 200000
	for i := 0; i < n; i++ {
		c, err := p.Select(context.Background(), f, cands, probs)
		require.NoError(t, err)
		counts[c]++
	}
	for i := range counts {
		// 5 standard errors of a binomial proportion.
		se := math.Sqrt(probs[i] * (1 - probs[i]) / n)
		assert.InDelta(t, probs[i], counts[i]/n, 5*se+1e-9, "arm %d: got frequency %v want propensity %v", i, counts[i]/n, probs[i])
	}
}

func TestConcurrentSelectUpdate(t *testing.T) {
	cands := arms(6)
	for name, p := range builtins(t) {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					probs := make([]float64, len(cands))
					for i := 0; i < 300; i++ {
						c, err := p.Select(context.Background(), &policy.Features{}, cands[:1+i%len(cands)], probs)
						assert.NoError(t, err)
						assert.NoError(t, p.Update(&policy.Features{}, cands[:1+i%len(cands)], c, 0.5))
					}
				}()
			}
			wg.Wait()
		})
	}
}

func BenchmarkSelect(b *testing.B) {
	cands := arms(8)
	for name, p := range builtins(b) {
		b.Run(name, func(b *testing.B) {
			f := &policy.Features{PromptTokens: 300}
			probs := make([]float64, len(cands))
			for i := 0; i < 1000; i++ {
				c, _ := p.Select(context.Background(), f, cands, probs)
				_ = p.Update(f, cands, c, 0.5)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _ = p.Select(context.Background(), f, cands, probs)
			}
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	cands := arms(8)
	for name, p := range builtins(b) {
		b.Run(name, func(b *testing.B) {
			f := &policy.Features{PromptTokens: 300}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = p.Update(f, cands, i%8, 0.5)
			}
		})
	}
}
