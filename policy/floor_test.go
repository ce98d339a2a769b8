package policy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFloorPropensities(t *testing.T) {
	ctx := context.Background()
	cands := arms(4)
	inner, err := policy.NewUCB1(policy.UCB1Opts{C: 1})
	require.NoError(t, err)
	p, err := policy.WithFloor(inner, 0.2, 1)
	require.NoError(t, err)
	for i := range cands {
		require.NoError(t, p.Update(nil, cands, i, 0.1*float64(i)))
	}
	probs := make([]float64, 4)
	_, err = p.Select(ctx, nil, cands, probs)
	require.NoError(t, err)
	// UCB1 plays m3; the floor spreads 0.2 over the four candidates.
	assert.InDeltaSlice(t, []float64{0.05, 0.05, 0.05, 0.85}, probs, 1e-12)
	assert.Equal(t, "ucb1", p.Name())
	assert.Equal(t, "1+floor:0.2", policy.VersionOf(p))
	assert.Same(t, inner, p.Inner())

	// Every candidate keeps at least eps/K whatever the inner does.
	for _, spec := range []string{"weighted=floor:0.1", "thompson=floor:0.1", "softmax=floor:0.1;temperature:0.001"} {
		q := build(t, spec, 4)
		for i := 0; i < 200; i++ {
			k := 1 + i%4
			_, err := q.Select(ctx, nil, cands[:k], probs)
			require.NoError(t, err)
			for j := 0; j < k; j++ {
				assert.GreaterOrEqual(t, probs[j], 0.1/float64(k)-1e-12, "%s: arm %d of %d", spec, j, k)
			}
		}
	}
}

func TestFloorErrors(t *testing.T) {
	inner := policy.NewRandom(policy.RandomOpts{Seed: 1})
	_, err := policy.WithFloor(nil, 0.1, 1)
	assert.Error(t, err)
	for _, eps := range []float64{-0.1, 1.1} {
		_, err = policy.WithFloor(inner, eps, 1)
		assert.ErrorContains(t, err, fmt.Sprintf("floor %v outside [0,1]", eps))
	}
	f, err := policy.WithFloor(inner, 0.1, 1)
	require.NoError(t, err)
	_, err = policy.WithFloor(f, 0.1, 1)
	assert.ErrorContains(t, err, "already has an exploration floor")
	// The inner policy's errors pass through.
	_, err = f.Select(context.Background(), nil, nil, nil)
	assert.ErrorIs(t, err, policy.ErrNoCandidates)
}

// ExampleWithFloor makes the deterministic weighted score safe for
// off-policy evaluation through the registry's generic floor parameter.
func ExampleWithFloor() {
	reg := policy.NewBuiltinRegistry()
	p, _ := reg.NewFromString("weighted=floor:0.1")
	cands := []decision.Arm{
		{ID: "small", LatencyMS: 300, Quality: 0.6, PriceIn: 0.0001, PriceOut: 0.0004},
		{ID: "large", LatencyMS: 900, Quality: 0.9, PriceIn: 0.003, PriceOut: 0.015},
	}
	probs := make([]float64, 2)
	_, _ = p.Select(context.Background(), &decision.Features{PromptTokens: 400}, cands, probs)
	fmt.Printf("%s %s %.2f %.2f\n", p.Name(), policy.VersionOf(p), probs[0], probs[1])
	// Output: weighted 1+floor:0.1 0.95 0.05
}
