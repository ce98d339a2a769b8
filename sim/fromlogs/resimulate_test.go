package fromlogs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
	"github.com/routelab/routelab/sim/fromlogs"
)

// TestResimulateFitted: each target runs as sim.Run would run it on the
// scenario, labelled with its name (or its policy's).
func TestResimulateFitted(t *testing.T) {
	sc, err := sim.LoadScenario("steady")
	require.NoError(t, err)
	newP := func(spec string) policy.Policy {
		p, err := policy.NewBuiltinRegistry().NewFromString(spec)
		require.NoError(t, err)
		return p
	}
	targets := []replay.Target{{Name: "ts", Policy: newP("thompson=seed:3")}, {Policy: newP("ucb1")}}
	got, err := fromlogs.ResimulateFitted(context.Background(), sc, targets, fromlogs.FittedOpts{Seed: 9, Requests: 2000})
	require.NoError(t, err)
	require.Len(t, got, 2)
	want, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: newP("thompson=seed:3"), Seed: 9, Requests: 2000})
	require.NoError(t, err)
	want.Policy = "ts"
	want.DecisionsPerSecond, got[0].DecisionsPerSecond = 0, 0 // wall-clock throughput
	assert.Equal(t, want, got[0])
	assert.Equal(t, "ucb1", got[1].Policy)
	assert.Equal(t, 2000, got[1].Requests)

	_, err = fromlogs.ResimulateFitted(context.Background(), sc, nil, fromlogs.FittedOpts{})
	assert.ErrorContains(t, err, "no target")
	_, err = fromlogs.ResimulateFitted(context.Background(), nil, targets, fromlogs.FittedOpts{})
	assert.ErrorContains(t, err, "no scenario")
	_, err = fromlogs.ResimulateFitted(context.Background(), sc, targets, fromlogs.FittedOpts{Requests: -1})
	assert.ErrorContains(t, err, "requests")
}
