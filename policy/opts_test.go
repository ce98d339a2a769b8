package policy_test

import (
	"context"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every constructor takes one XOpts whose zero value is documented and
// valid: the policy it builds selects and learns.
func TestZeroOptsBuildWorkingPolicies(t *testing.T) {
	build := map[string]func() (policy.Policy, error){
		"random":         func() (policy.Policy, error) { return policy.NewRandom(policy.RandomOpts{}), nil },
		"epsilon-greedy": func() (policy.Policy, error) { return policy.NewEpsilonGreedy(policy.EpsilonGreedyOpts{}) },
		"ucb1":           func() (policy.Policy, error) { return policy.NewUCB1(policy.UCB1Opts{}) },
		"sw-ucb":         func() (policy.Policy, error) { return policy.NewSlidingUCB(policy.SlidingUCBOpts{}) },
		"d-ucb":          func() (policy.Policy, error) { return policy.NewDiscountedUCB(policy.DiscountedUCBOpts{}) },
		"softmax":        func() (policy.Policy, error) { return policy.NewSoftmax(policy.SoftmaxOpts{}) },
		"linucb":         func() (policy.Policy, error) { return policy.NewLinUCB(policy.LinUCBOpts{}) },
		"lin-thompson":   func() (policy.Policy, error) { return policy.NewLinThompson(policy.LinThompsonOpts{}) },
		"egreedy-ridge":  func() (policy.Policy, error) { return policy.NewEGreedyRidge(policy.EGreedyRidgeOpts{}) },
	}
	cands := []decision.Arm{{ID: "a"}, {ID: "b"}}
	f := &decision.Features{Vector: []float64{1, 0.5}}
	for name, b := range build {
		p, err := b()
		require.NoError(t, err, name)
		assert.Equal(t, name, p.Name())
		probs := make([]float64, len(cands))
		for range 20 {
			i, err := p.Select(context.Background(), f, cands, probs)
			require.NoError(t, err, name)
			require.NoError(t, p.Update(f, cands, i, 0.5), name)
		}
	}
}

// A zero in an options struct means the default, but a spec that says 0
// for a parameter that must be positive is a mistake, not a request for
// the default.
func TestSpecZeroIsNotTheDefault(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	for spec, msg := range map[string]string{
		"softmax=temperature:0": "temperature 0 must be",
		"sw-ucb=window:0":       "window 0 outside",
		"d-ucb=gamma:0":         "gamma 0 outside",
		"lin-thompson=v:0":      "v 0 must be",
	} {
		_, err := reg.NewFromString(spec)
		assert.ErrorContains(t, err, msg, spec)
	}
}
