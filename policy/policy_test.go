package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func arms(k int) []decision.Arm {
	out := make([]decision.Arm, k)
	for i := range out {
		out[i] = decision.Arm{ID: fmt.Sprintf("m%d", i), PriceIn: 0.001 * float64(i+1), PriceOut: 0.002 * float64(i+1), LatencyMS: 100 * float64(i+1), Quality: 0.5 + 0.05*float64(i)}
	}
	return out
}

// benchEncoder produces 32-dimensional vectors:
// 1 + 6 tasks + 6 token buckets + 8 hours + 2 cyclic + 4 tenants + 5 tags.
func benchEncoder(t testing.TB) *policy.FeatureEncoder {
	e, err := policy.NewEncoder(policy.EncoderSpec{
		Intercept:     true,
		Tasks:         []string{"code", "chat", "math", "summarise", "translate"},
		TokenBuckets:  policy.DefaultTokenBuckets,
		HourBuckets:   8,
		HourCyclic:    true,
		TenantBuckets: 4,
		Tags:          []string{"tier=gold", "tier=free", "lang=en", "lang=de", "stream"},
	})
	require.NoError(t, err)
	require.Equal(t, 32, e.Dim())
	return e
}

var taskNames = []string{"code", "chat", "math", "summarise", "translate", "other"}

// feat returns the i-th of a deterministic family of requests, encoded.
func feat(e policy.Encoder, i int) *decision.Features {
	f := &decision.Features{
		Task:         taskNames[i%len(taskNames)],
		PromptTokens: 50 << (i % 9),
		Time:         time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Minute),
		Tenant:       fmt.Sprintf("tenant-%d", i%5),
	}
	if i%3 == 0 {
		f.Tags = []string{"tier=gold", "lang=de"}
	}
	f.Vector = e.Encode(f, nil)
	return f
}

// specs lists every registered policy plus variants worth testing on their
// own (multi-draw Thompson, floors around deterministic policies).
func specs(t testing.TB) []string {
	out := policy.NewBuiltinRegistry().Names()
	return append(out,
		"thompson=draws:8", "thompson=model:gaussian", "d-thompson=model:gaussian;draws:4",
		"lin-thompson=draws:8", "linucb=gamma:0.999", "lin-thompson=gamma:0.995;draws:4", "ucb1=floor:0.1", "weighted=floor:0.2", "linucb=floor:0.1", "thompson=floor:0.05")
}

func build(t testing.TB, spec string, seed uint64) policy.Policy {
	t.Helper()
	s, err := policy.ParseSpec(spec)
	require.NoError(t, err)
	s.Params["seed"] = fmt.Sprint(seed)
	p, err := policy.NewBuiltinRegistry().New(s)
	require.NoError(t, err, spec)
	return p
}

// bernoulli draws reward 1 with a probability that depends on the arm and
// the request's task, so contextual policies have something to learn.
func bernoulli(u float64, f *decision.Features, a decision.Arm) float64 {
	var idx int
	_, _ = fmt.Sscanf(a.ID, "m%d", &idx)
	q := 0.2 + 0.1*float64((idx+len(f.Task))%6)
	if u < q {
		return 1
	}
	return 0
}

// train runs n select/update steps of p on rotating candidate subsets.
func train(t testing.TB, p policy.Policy, e policy.Encoder, n int, rng *rand.Rand) {
	t.Helper()
	cands := arms(6)
	probs := make([]float64, len(cands))
	for i := 0; i < n; i++ {
		cs := cands[i%3 : 3+i%4]
		f := feat(e, i)
		c, err := p.Select(context.Background(), f, cs, probs)
		require.NoError(t, err)
		require.NoError(t, p.Update(f, cs, c, bernoulli(rng.Float64(), f, cs[c])))
	}
}

func TestPropensitiesSumToOneAndChosenHasMass(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	cands := arms(5)
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 1)
			probs := make([]float64, len(cands))
			rng := rand.New(rand.NewPCG(3, 4))
			for step := 0; step < 500; step++ {
				f := feat(e, step)
				c, err := p.Select(ctx, f, cands, probs)
				require.NoError(t, err)
				sum := 0.0
				for _, q := range probs[:len(cands)] {
					assert.GreaterOrEqual(t, q, 0.0)
					sum += q
				}
				assert.InDelta(t, 1, sum, 1e-9, "sum of propensities")
				assert.Greater(t, probs[c], 0.0, "chosen arm %d has zero propensity", c)
				require.NoError(t, p.Update(f, cands, c, bernoulli(rng.Float64(), f, cands[c])))
			}
		})
	}
}

// TestPropensitiesMatchFrequencies freezes each policy after some learning
// and checks that the empirical frequency of every arm matches the mean
// reported propensity. The mean is what the law of total probability asks
// for: policies such as one-draw Thompson report the probability given
// their internal draw, whose average over draws is the arm's marginal
// probability. For every stochastic policy this is a real test; for the
// deterministic ones it checks that the reported 1 is the arm played.
func TestPropensitiesMatchFrequencies(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	cands := arms(5)
	const n = 8000
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 11)
			train(t, p, e, 300, rand.New(rand.NewPCG(5, 6)))
			f := feat(e, 7)
			probs := make([]float64, len(cands))
			meanP := make([]float64, len(cands))
			freq := make([]float64, len(cands))
			for i := 0; i < n; i++ {
				c, err := p.Select(ctx, f, cands, probs)
				require.NoError(t, err)
				freq[c]++
				for j := range cands {
					meanP[j] += probs[j]
				}
			}
			chi2, df := 0.0, 0
			for j := range cands {
				want, got := meanP[j]/n, freq[j]/n
				// 5 binomial standard errors: with 5 arms and ~30
				// policies the chance of a false alarm is ~1e-4.
				se := math.Sqrt(want * (1 - want) / n)
				assert.InDelta(t, want, got, 5*se+1e-9, "arm %d: frequency %v, mean propensity %v", j, got, want)
				if want > 0 {
					chi2 += (freq[j] - meanP[j]) * (freq[j] - meanP[j]) / meanP[j]
					df++
				} else {
					assert.Zero(t, freq[j], "arm %d played with propensity 0", j)
				}
			}
			// Chi-square with df-1 ≤ 4 degrees of freedom: 23.5 is its
			// 0.9999 quantile for 4.
			if df > 1 {
				assert.Less(t, chi2, 23.5, "chi-square of frequencies vs propensities")
			}
		})
	}
}

func TestBadInputIsAnError(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	cands := arms(3)
	f := feat(e, 1)
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 1)
			_, err := p.Select(ctx, f, nil, make([]float64, 3))
			assert.ErrorIs(t, err, policy.ErrNoCandidates)
			_, err = p.Select(ctx, f, cands, make([]float64, 2))
			assert.ErrorIs(t, err, policy.ErrProbsTooShort)
			assert.ErrorIs(t, p.Update(f, cands, 0, math.NaN()), policy.ErrBadReward)
			assert.ErrorIs(t, p.Update(f, cands, 0, math.Inf(1)), policy.ErrBadReward)
			assert.ErrorIs(t, p.Update(f, cands, 0, math.Inf(-1)), policy.ErrBadReward)
			assert.ErrorIs(t, p.Update(f, cands, 3, 0.5), policy.ErrBadChosen)
			assert.ErrorIs(t, p.Update(f, cands, -1, 0.5), policy.ErrBadChosen)
			assert.ErrorIs(t, p.Update(f, nil, 0, 0.5), policy.ErrNoCandidates)
			// Nothing above changed the policy: it still works.
			_, err = p.Select(ctx, f, cands, make([]float64, 3))
			assert.NoError(t, err)
		})
	}
}

func TestContextualPoliciesRejectBadVectors(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	cands := arms(3)
	probs := make([]float64, 3)
	for _, spec := range []string{"linucb", "lin-thompson", "egreedy-ridge", "linucb=floor:0.1", "linucb=dim:32"} {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 1)
			good := feat(e, 1)
			require.NoError(t, p.Update(good, cands, 0, 1))
			before := snapshot(t, p)

			_, err := p.Select(ctx, &decision.Features{}, cands, probs)
			assert.ErrorIs(t, err, policy.ErrBadVector)
			assert.Contains(t, err.Error(), "configure an Encoder")

			short := &decision.Features{Vector: make([]float64, 31)}
			_, err = p.Select(ctx, short, cands, probs)
			assert.ErrorIs(t, err, policy.ErrBadVector)
			assert.Contains(t, err.Error(), "expects 32 dims, got 31")
			assert.ErrorIs(t, p.Update(short, cands, 0, 1), policy.ErrBadVector)

			nan := &decision.Features{Vector: append([]float64(nil), good.Vector...)}
			nan.Vector[4] = math.NaN()
			_, err = p.Select(ctx, nan, cands, probs)
			assert.ErrorIs(t, err, policy.ErrBadVector)
			assert.Contains(t, err.Error(), "Vector[4] = NaN")
			assert.ErrorIs(t, p.Update(nan, cands, 0, 1), policy.ErrBadVector)
			nan.Vector[4] = math.Inf(-1)
			assert.ErrorIs(t, p.Update(nan, cands, 0, 1), policy.ErrBadVector)
			nan.Vector[4] = 1e200
			assert.ErrorIs(t, p.Update(nan, cands, 0, 1), policy.ErrBadVector)

			assert.Equal(t, before, snapshot(t, p), "rejected input changed the learned state")
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
		{"sw-ucb=window:0", "window 0 outside"},
		{"d-ucb=gamma:1.5", "gamma 1.5 outside (0,1]"},
		{"d-thompson=gamma:0", "gamma 0 outside (0,1]"},
		{"softmax=temperature:0", "temperature 0 must be"},
		{"linucb=alpha:-1", "alpha -1 must be"},
		{"linucb=lambda:-1", "lambda -1 must be"},
		{"linucb=dim:-3", "dim -3 outside"},
		{"lin-thompson=v:0", "v 0 must be"},
		{"egreedy-ridge=epsilon:2", "epsilon 2 outside"},
		{"ucb1=floor:1.5", `parameter "floor": 1.5 outside [0,1]`},
		{"ucb1=floor:x", `parameter "floor": "x" is not a finite number`},
		{"ucb1=floor:0.1;cc:1", `unknown parameter "cc"`},
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
	cands := []decision.Arm{
		{ID: "slow-bad-dear", LatencyMS: 2000, Quality: 0.5, PriceIn: 0.01, PriceOut: 0.03},
		{ID: "fast-good-cheap", LatencyMS: 200, Quality: 0.9, PriceIn: 0.0005, PriceOut: 0.0015},
	}
	probs := make([]float64, 2)
	c, err := w.Select(context.Background(), &decision.Features{PromptTokens: 500}, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 1, c)
	assert.Equal(t, []float64{0, 1}, probs)
	// Weights as documented: the scores sum to latency+accuracy+cost weights.
	scores := make([]float64, 2)
	w.Score(&decision.Features{PromptTokens: 500}, cands, scores)
	assert.InDelta(t, 1.0, scores[0]+scores[1], 1e-9)
	assert.InDelta(t, 0.4*(1.0/200)/(1.0/200+1.0/2000)+0.5*0.9/1.4, scores[1]-0.1*scores1Cost(cands, 500), 1e-9)
}

func scores1Cost(c []decision.Arm, in int) float64 {
	cost := func(a decision.Arm) float64 { return (float64(in)*a.PriceIn + 256*a.PriceOut) / 1000 }
	return (1 / cost(c[1])) / (1/cost(c[0]) + 1/cost(c[1]))
}

func TestEpsilonGreedyPropensitiesMatchFrequencies(t *testing.T) {
	p, err := policy.NewEpsilonGreedy(policy.EpsilonGreedyOpts{Epsilon: 0.3, Seed: 42})
	require.NoError(t, err)
	cands := arms(4)
	f := &decision.Features{}
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
	assert.InDeltaSlice(t, []float64{0.075, 0.075, 0.075, 0.775}, probs, 1e-12)
	for i := range counts {
		// 5 standard errors of a binomial proportion.
		se := math.Sqrt(probs[i] * (1 - probs[i]) / n)
		assert.InDelta(t, probs[i], counts[i]/n, 5*se+1e-9, "arm %d: got frequency %v want propensity %v", i, counts[i]/n, probs[i])
	}
}

func TestSoftmaxPropensitiesAreBoltzmann(t *testing.T) {
	p, err := policy.NewSoftmax(policy.SoftmaxOpts{Temperature: 0.2, Init: 1, Seed: 3})
	require.NoError(t, err)
	cands := arms(3)
	for i, r := range []float64{0.2, 0.5, 0.9} {
		require.NoError(t, p.Update(nil, cands, i, r))
	}
	probs := make([]float64, 4)
	_, err = p.Select(context.Background(), nil, append(cands, decision.Arm{ID: "new"}), probs)
	require.NoError(t, err)
	z := math.Exp(1) + math.Exp(2.5) + math.Exp(4.5) + math.Exp(5)
	assert.InDeltaSlice(t, []float64{math.Exp(1) / z, math.Exp(2.5) / z, math.Exp(4.5) / z, math.Exp(5) / z}, probs, 1e-12)
}

func TestConcurrentSelectUpdate(t *testing.T) {
	e := benchEncoder(t)
	cands := arms(6)
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 1)
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					probs := make([]float64, len(cands))
					for i := 0; i < 200; i++ {
						cs := cands[:1+(i+g)%len(cands)]
						f := feat(e, i*8+g)
						c, err := p.Select(context.Background(), f, cs, probs)
						if !assert.NoError(t, err) {
							return
						}
						assert.NoError(t, p.Update(f, cs, c, float64((i+g)%2)))
					}
				}()
			}
			if s, ok := p.(policy.Snapshotter); ok {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 5; i++ {
						var buf bytes.Buffer
						assert.NoError(t, s.Snapshot(&buf))
						assert.NoError(t, s.Restore(&buf))
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestChangingCandidateSets shows that every policy keys what it learns by
// arm ID: whichever subset and order the rule filter leaves, the
// propensities cover exactly that set and learning follows the arm.
func TestChangingCandidateSets(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	all := arms(6)
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 2)
			rng := rand.New(rand.NewPCG(9, 9))
			best, played := 0, 0
			for i := 0; i < 2000; i++ {
				perm := rng.Perm(len(all))
				k := 1 + rng.IntN(len(all))
				cs := make([]decision.Arm, k)
				for j := range cs {
					cs[j] = all[perm[j]]
				}
				probs := make([]float64, k+3)
				for j := range probs {
					probs[j] = -7 // must not leak into the first k
				}
				f := feat(e, i)
				c, err := p.Select(ctx, f, cs, probs)
				require.NoError(t, err)
				require.True(t, c >= 0 && c < k)
				sum := 0.0
				for _, q := range probs[:k] {
					sum += q
				}
				require.InDelta(t, 1, sum, 1e-9)
				assert.Equal(t, []float64{-7, -7, -7}, probs[k:], "Select wrote past the candidates")
				// m4 always pays 1, every other arm 0.2.
				r := 0.2
				if cs[c].ID == "m4" {
					r = 1
				}
				require.NoError(t, p.Update(f, cs, c, r))
				if i >= 1300 && k >= 2 && containsID(cs, "m4") {
					played++
					if cs[c].ID == "m4" {
						best++
					}
				}
			}
			if spec == "random" || spec == "weighted" || spec == "weighted=floor:0.2" || spec == "linear-router" {
				return // they do not learn from rewards (linear-router is trained offline)
			}
			assert.Greater(t, float64(best)/float64(played), 0.6, "share of m4 when offered, late in the run")
		})
	}
}

func containsID(cs []decision.Arm, id string) bool {
	for _, a := range cs {
		if a.ID == id {
			return true
		}
	}
	return false
}

func snapshot(t testing.TB, p policy.Policy) []byte {
	t.Helper()
	s, ok := p.(policy.Snapshotter)
	require.True(t, ok, "%s does not implement Snapshotter", p.Name())
	var buf bytes.Buffer
	require.NoError(t, s.Snapshot(&buf))
	return buf.Bytes()
}

// TestSnapshotRoundTripIsExact restores every policy's snapshot into a
// policy built with a different seed (and through Load), then checks that
// original and restored make identical decisions from then on.
func TestSnapshotRoundTripIsExact(t *testing.T) {
	ctx := context.Background()
	e := benchEncoder(t)
	reg := policy.NewBuiltinRegistry()
	cands := arms(5)
	for _, spec := range specs(t) {
		t.Run(spec, func(t *testing.T) {
			orig := build(t, spec, 7)
			train(t, orig, e, 250, rand.New(rand.NewPCG(1, 1)))
			data := snapshot(t, orig)

			restored := build(t, spec, 99)
			require.NoError(t, restored.(policy.Snapshotter).Restore(bytes.NewReader(data)))
			loaded, err := policy.Load(reg, bytes.NewReader(data))
			require.NoError(t, err)
			assert.Equal(t, orig.Name(), loaded.Name())
			assert.Equal(t, policy.VersionOf(orig), policy.VersionOf(loaded))
			assert.Equal(t, data, snapshot(t, restored))
			assert.Equal(t, data, snapshot(t, loaded))

			rng := rand.New(rand.NewPCG(2, 2))
			ps := []policy.Policy{orig, restored, loaded}
			probs := make([][]float64, 3)
			for i := range probs {
				probs[i] = make([]float64, len(cands))
			}
			for step := 0; step < 200; step++ {
				f := feat(e, 1000+step)
				cs := cands[:2+step%4]
				var chosen [3]int
				for i, p := range ps {
					c, err := p.Select(ctx, f, cs, probs[i])
					require.NoError(t, err)
					chosen[i] = c
				}
				require.Equal(t, chosen[0], chosen[1], "step %d: restored chose differently", step)
				require.Equal(t, chosen[0], chosen[2], "step %d: loaded chose differently", step)
				require.Equal(t, probs[0], probs[1])
				require.Equal(t, probs[0], probs[2])
				r := bernoulli(rng.Float64(), f, cs[chosen[0]])
				for _, p := range ps {
					require.NoError(t, p.Update(f, cs, chosen[0], r))
				}
			}
			assert.Equal(t, snapshot(t, orig), snapshot(t, restored))
		})
	}
}

func TestSnapshotFileRoundTrip(t *testing.T) {
	e := benchEncoder(t)
	p := build(t, "linucb=floor:0.1", 3)
	train(t, p, e, 200, rand.New(rand.NewPCG(1, 2)))
	path := t.TempDir() + "/linucb.json"
	require.NoError(t, policy.SaveFile(p, path))
	q, err := policy.LoadFile(policy.NewBuiltinRegistry(), path)
	require.NoError(t, err)
	assert.Equal(t, snapshot(t, p), snapshot(t, q))
	_, err = policy.LoadFile(policy.NewBuiltinRegistry(), path+".missing")
	assert.Error(t, err)
}

func TestBadSnapshotsAreClearErrorsAndChangeNothing(t *testing.T) {
	e := benchEncoder(t)
	donor := build(t, "linucb", 1)
	train(t, donor, e, 50, rand.New(rand.NewPCG(1, 2)))
	good := string(snapshot(t, donor))
	replace := func(old, new string) string {
		require.Contains(t, good, old)
		return string(bytes.Replace([]byte(good), []byte(old), []byte(new), 1))
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "invalid policy snapshot"},
		{"not json", "hello", "invalid character"},
		{"truncated", good[:len(good)/2], "unexpected EOF"},
		{"wrong format", replace(`"format":"routelab/policy-snapshot"`, `"format":"other"`), `format "other"`},
		{"wrong version", replace(`"version":1`, `"version":2`), "version 2, this build reads version 1"},
		{"wrong policy", replace(`"policy":"linucb"`, `"policy":"ucb1"`), `snapshot of policy "ucb1", cannot restore into "linucb"`},
		{"other params", replace(`"alpha":"1"`, `"alpha":"2"`), `parameter "alpha": snapshot has "2", policy has "1"`},
		{"unknown field", replace(`"state":{`, `"state":{"extra":1,`), `unknown field "extra"`},
		{"trailing", good + "{}", "trailing data"},
		{"dim", replace(`"dim":32,"clock"`, `"dim":31,"clock"`), "matrix sizes do not match dim 31"},
		{"lambda_eff", replace(`"lambda_eff":1,`, `"lambda_eff":0.25,`), "lambda_eff 0.25 (lambda 1) invalid"},
		{"clock", replace(`"clock":0,`, `"clock":1000000,`), "clock 1000000"},
		{"asymmetric", replace(`"a":[`, `"a":[7,`), "matrix sizes"},
		{"not inverse", replace(`"a_inv":[`, `"a_inv":[3`), "A·A⁻¹ differs from I"},
		{"negative n", replace(`"n":`, `"n":-`), "counts n=-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := build(t, "linucb", 5)
			train(t, p, e, 30, rand.New(rand.NewPCG(3, 4)))
			before := snapshot(t, p)
			err := p.(policy.Snapshotter).Restore(bytes.NewReader([]byte(tc.data)))
			require.Error(t, err)
			assert.ErrorIs(t, err, policy.ErrSnapshot)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, snapshot(t, p), "failed restore changed the policy")
		})
	}
	// Beta-model statistics must describe a proper posterior.
	th := build(t, "thompson", 1)
	err := th.(policy.Snapshotter).Restore(bytes.NewReader([]byte(
		`{"format":"routelab/policy-snapshot","version":1,"policy":"thompson","params":{"draws":"1","model":"beta","sigma":"0.5"},"state":{"rng":"cGNnOgAAAAAAAAAAAAAAAAAAAAA=","arms":[{"id":"a","n":1,"sum":5,"sum_sq":1}]}}`)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "beta posterior")
}

func FuzzRestore(f *testing.F) {
	e := benchEncoder(f)
	names := []string{"ucb1", "thompson", "sw-ucb", "softmax", "linucb", "lin-thompson", "ucb1=floor:0.1"}
	for _, n := range names {
		p := build(f, n, 1)
		train(f, p, e, 20, rand.New(rand.NewPCG(1, 2)))
		f.Add(snapshot(f, p))
	}
	f.Add([]byte(`{"format":"routelab/policy-snapshot","version":1,"policy":"ucb1","params":{"c":"1"},"state":{"arms":[{"id":"x","n":1e308,"sum":-1e308,"sum_sq":0}]}}`))
	cands := arms(3)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range names {
			p := build(t, n, 1)
			before := snapshot(t, p)
			err := p.(policy.Snapshotter).Restore(bytes.NewReader(data))
			if err != nil {
				if !bytes.Equal(before, snapshot(t, p)) {
					t.Fatalf("%s: failed restore (%v) changed the policy", n, err)
				}
				continue
			}
			probs := make([]float64, 3)
			f := feat(e, 1)
			c, err := p.Select(context.Background(), f, cands, probs)
			if err != nil {
				continue // e.g. a restored dimension the vector does not match
			}
			sum := 0.0
			for _, q := range probs {
				if math.IsNaN(q) || q < 0 {
					t.Fatalf("%s: propensity %v after restore", n, q)
				}
				sum += q
			}
			if math.Abs(sum-1) > 1e-9 || c < 0 || c >= 3 {
				t.Fatalf("%s: chose %d with propensities %v after restore", n, c, probs)
			}
		}
	})
}

// TestOrderOfRewardsDoesNotMatter delivers the same rewards in two orders:
// policies whose statistics are sums (all but the sliding-window and
// discounted ones, whose clock is reward arrival by design) must end with
// the same learned state.
func TestOrderOfRewardsDoesNotMatter(t *testing.T) {
	e := benchEncoder(t)
	cands := arms(4)
	type upd struct {
		f      *decision.Features
		chosen int
		r      float64
	}
	rng := rand.New(rand.NewPCG(4, 4))
	ups := make([]upd, 600)
	for i := range ups {
		f := feat(e, i)
		c := rng.IntN(4)
		ups[i] = upd{f, c, bernoulli(rng.Float64(), f, cands[c])}
	}
	for _, spec := range []string{"epsilon-greedy", "ucb1", "thompson", "thompson=model:gaussian", "softmax", "linucb", "lin-thompson", "egreedy-ridge"} {
		t.Run(spec, func(t *testing.T) {
			inOrder, shuffled := build(t, spec, 1), build(t, spec, 1)
			for _, u := range ups {
				require.NoError(t, inOrder.Update(u.f, cands, u.chosen, u.r))
			}
			perm := rand.New(rand.NewPCG(8, 8)).Perm(len(ups))
			for _, i := range perm {
				u := ups[i]
				require.NoError(t, shuffled.Update(u.f, cands, u.chosen, u.r))
			}
			a, b := stateNumbers(t, inOrder), stateNumbers(t, shuffled)
			require.Equal(t, len(a), len(b))
			for k, va := range a {
				assert.InDelta(t, va, b[k], 1e-9*(1+math.Abs(va)), "state %s", k)
			}
		})
	}
}

// stateNumbers flattens a snapshot's numeric state into path → value, with
// arms keyed by id so their order of first appearance does not matter.
func stateNumbers(t *testing.T, p policy.Policy) map[string]float64 {
	var doc map[string]any
	require.NoError(t, json.Unmarshal(snapshot(t, p), &doc))
	out := map[string]float64{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case float64:
			out[path] = x
		case map[string]any:
			id, _ := x["id"].(string)
			for k, c := range x {
				if k == "rng" || k == "id" {
					continue
				}
				walk(path+"/"+id+"/"+k, c)
			}
		case []any:
			for i, c := range x {
				key := fmt.Sprint(i)
				if m, ok := c.(map[string]any); ok && m["id"] != nil {
					key = ""
				}
				walk(path+"/"+key, c)
			}
		}
	}
	walk("", doc["state"])
	return out
}

// TestLinearPoliciesLearnAContextualProblem builds a problem whose best arm
// depends on the task (the reward probability is linear in the encoded
// vector) and checks that the contextual policies approach the oracle while
// the best a context-free policy can do — always the arm best on average —
// stays clearly below.
func TestLinearPoliciesLearnAContextualProblem(t *testing.T) {
	ctx := context.Background()
	enc, err := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Tasks: []string{"code", "chat", "math", "summarise"}, TokenBuckets: []int{256, 2048}})
	require.NoError(t, err)
	cands := arms(4)
	// q[arm][task]: each task has its own best arm; token size adds a
	// per-arm shift, so the reward is linear in the one-hot vector.
	q := [4][5]float64{
		{0.8, 0.3, 0.3, 0.4, 0.5},
		{0.3, 0.8, 0.4, 0.3, 0.5},
		{0.4, 0.3, 0.8, 0.3, 0.5},
		{0.5, 0.5, 0.5, 0.7, 0.55},
	}
	tokShift := [4][3]float64{{0.05, 0, -0.05}, {0, 0, 0}, {-0.05, 0, 0.05}, {0, 0.02, 0}}
	tasks := []string{"code", "chat", "math", "summarise", "misc"}
	reqRng := rand.New(rand.NewPCG(21, 22))
	const n = 6000
	type req struct {
		f    *decision.Features
		task int
		tok  int
		u    float64
	}
	reqs := make([]req, n)
	for i := range reqs {
		task := reqRng.IntN(len(tasks))
		tokens := []int{100, 1000, 5000}[reqRng.IntN(3)]
		f := &decision.Features{Task: tasks[task], PromptTokens: tokens}
		f.Vector = enc.Encode(f, nil)
		tok := 0
		if tokens > 256 {
			tok = 1
		}
		if tokens > 2048 {
			tok = 2
		}
		reqs[i] = req{f, task, tok, reqRng.Float64()}
	}
	mean := func(a, r int) float64 { return q[a][reqs[r].task] + tokShift[a][reqs[r].tok] }
	var oracle float64
	bestFixed := math.Inf(-1)
	for a := range cands {
		var s float64
		for r := n / 2; r < n; r++ {
			s += mean(a, r)
		}
		bestFixed = math.Max(bestFixed, s/float64(n/2))
	}
	for r := n / 2; r < n; r++ {
		best := 0.0
		for a := range cands {
			best = math.Max(best, mean(a, r))
		}
		oracle += best / float64(n/2)
	}
	require.Less(t, bestFixed, 0.9*oracle, "the problem must reward context")

	for _, spec := range []string{"linucb", "lin-thompson", "egreedy-ridge"} {
		t.Run(spec, func(t *testing.T) {
			p := build(t, spec, 5)
			probs := make([]float64, len(cands))
			var late float64
			for r := range reqs {
				c, err := p.Select(ctx, reqs[r].f, cands, probs)
				require.NoError(t, err)
				reward := 0.0
				if reqs[r].u < mean(c, r) {
					reward = 1
				}
				require.NoError(t, p.Update(reqs[r].f, cands, c, reward))
				if r >= n/2 {
					late += mean(c, r) / float64(n/2)
				}
			}
			t.Logf("%s: expected reward %.3f, oracle %.3f, best fixed arm %.3f", spec, late, oracle, bestFixed)
			assert.GreaterOrEqual(t, late, 0.95*oracle, "second-half expected reward vs oracle")
			assert.Greater(t, late, bestFixed+0.05, "must beat every context-free arm")
		})
	}
}

func TestLinUCBPredictTracksTheRegression(t *testing.T) {
	p, err := policy.NewLinUCB(policy.LinUCBOpts{Alpha: 1, LinearOpts: policy.LinearOpts{Lambda: 0.01}})
	require.NoError(t, err)
	cands := arms(1)
	// y = 2·x0 − x1 exactly; the ridge estimate converges to it.
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 2000; i++ {
		x := []float64{rng.Float64(), rng.Float64()}
		require.NoError(t, p.Update(&decision.Features{Vector: x}, cands, 0, 2*x[0]-x[1]))
	}
	m, sd, err := p.Predict(&decision.Features{Vector: []float64{0.5, 0.25}}, "m0")
	require.NoError(t, err)
	assert.InDelta(t, 0.75, m, 1e-3)
	assert.Less(t, sd, 0.1)
	m, sd, err = p.Predict(&decision.Features{Vector: []float64{1, 1}}, "unseen")
	require.NoError(t, err)
	assert.Zero(t, m)
	assert.InDelta(t, math.Sqrt(2/0.01), sd, 1e-12, "prior width of an unseen arm")
}

// TestNonStationaryPoliciesTrackAChange switches the best arm half-way and
// compares each adaptive policy with its stationary counterpart on the
// second half. (The sim integration test repeats this on the drift scenario.)
func TestNonStationaryPoliciesTrackAChange(t *testing.T) {
	ctx := context.Background()
	cands := arms(3)
	const n = 20000
	run := func(spec string) float64 {
		p := build(t, spec, 3)
		rng := rand.New(rand.NewPCG(17, 17))
		probs := make([]float64, 3)
		var late float64
		for i := 0; i < n; i++ {
			// The best arm degrades: a stationary policy keeps playing it
			// until thousands of bad rewards outweigh its long history.
			q := []float64{0.8, 0.5, 0.3}
			if i >= n/2 {
				q = []float64{0.2, 0.5, 0.3}
			}
			c, err := p.Select(ctx, nil, cands, probs)
			require.NoError(t, err)
			r := 0.0
			if rng.Float64() < q[c] {
				r = 1
			}
			require.NoError(t, p.Update(nil, cands, c, r))
			if i >= n/2 {
				late += q[c] / (n / 2)
			}
		}
		return late
	}
	for _, pair := range [][2]string{{"sw-ucb", "ucb1"}, {"d-ucb", "ucb1"}, {"d-thompson", "thompson"}, {"d-thompson=model:gaussian", "thompson=model:gaussian"}} {
		adaptive, stationary := run(pair[0]), run(pair[1])
		t.Logf("%s %.3f vs %s %.3f (oracle 0.5)", pair[0], adaptive, pair[1], stationary)
		assert.Greater(t, adaptive, stationary+0.05, "%s must beat %s after the change", pair[0], pair[1])
		assert.Greater(t, adaptive, 0.4, "%s second-half reward", pair[0])
	}
}

// ---- benchmarks ----

func benchSpecs(b *testing.B) []string {
	return append(specs(b), "linucb=floor:0.05", "linucb=dense")
}

// benchPolicy builds spec, with "=dense" meaning LinUCB fed dense random
// vectors instead of the encoder's sparse one-hot ones.
func benchPolicy(b *testing.B, spec string) (policy.Policy, *decision.Features) {
	e := benchEncoder(b)
	f := feat(e, 5)
	if spec == "linucb=dense" {
		spec = "linucb"
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range f.Vector {
			f.Vector[i] = rng.NormFloat64()
		}
	}
	return build(b, spec, 1), f
}

func BenchmarkSelect(b *testing.B) {
	cands := arms(8)
	for _, spec := range benchSpecs(b) {
		b.Run(spec, func(b *testing.B) {
			p, f := benchPolicy(b, spec)
			probs := make([]float64, len(cands))
			for i := 0; i < 2000; i++ {
				c, _ := p.Select(context.Background(), f, cands, probs)
				_ = p.Update(f, cands, c, float64(i%2))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Select(context.Background(), f, cands, probs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	cands := arms(8)
	for _, spec := range benchSpecs(b) {
		b.Run(spec, func(b *testing.B) {
			p, f := benchPolicy(b, spec)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.Update(f, cands, i%8, float64(i%2)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"ucb1", "thompson=model:gaussian;seed:7", "linucb=alpha:0.5;floor:0.05", "a=b:c;;d:e", "=x", "x=y"} {
		f.Add(s)
	}
	reg := policy.NewBuiltinRegistry()
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := policy.ParseSpec(s)
		if err != nil {
			return
		}
		again, err := policy.ParseSpec(sp.String())
		if err != nil {
			t.Fatalf("%q: String() %q does not parse: %v", s, sp.String(), err)
		}
		if again.String() != sp.String() {
			t.Fatalf("%q: round trip %q -> %q", s, sp.String(), again.String())
		}
		// Building never panics, whatever the parameters.
		_, _ = reg.New(sp)
	})
}

func TestSoftmaxExtremeTemperatureStaysFinite(t *testing.T) {
	p, err := policy.NewSoftmax(policy.SoftmaxOpts{Temperature: 1e-310, Init: 1, Seed: 1})
	require.NoError(t, err)
	cands := arms(3)
	require.NoError(t, p.Update(nil, cands, 0, -1e100))
	require.NoError(t, p.Update(nil, cands, 1, 1e100))
	assert.ErrorIs(t, p.Update(nil, cands, 1, 1e101), policy.ErrBadReward, "would overflow sums")
	probs := make([]float64, 3)
	c, err := p.Select(context.Background(), nil, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 1, c)
	assert.Equal(t, []float64{0, 1, 0}, probs)
}

func TestWeightedAvoidsFailingProvider(t *testing.T) {
	w := policy.NewWeighted()
	cands := []decision.Arm{
		{ID: "good", LatencyMS: 500, Quality: 0.8, PriceIn: 0.001, PriceOut: 0.002},
		{ID: "better", LatencyMS: 400, Quality: 0.85, PriceIn: 0.001, PriceOut: 0.002},
	}
	probs := make([]float64, 2)
	c, err := w.Select(context.Background(), &decision.Features{}, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 1, c, "healthy: the faster, more accurate arm wins")
	cands[1].ErrorRate = 0.9
	c, err = w.Select(context.Background(), &decision.Features{}, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 0, c, "failing 90%%: the accuracy share moves to the healthy arm")
}
