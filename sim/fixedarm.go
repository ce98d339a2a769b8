package sim

import (
	"context"
	"fmt"
	"sort"

	"github.com/routelab/routelab/decision"
)

// Stateful reports whether the scenario's providers have state that the
// routing itself creates: a token bucket (RateLimit), or a queue the
// traffic can fill (Capacity below ten seconds of the mean arrival rate).
// There the oracle's expected reward, computed against the state at each
// arrival, depends on the policy that shaped that state, so "% of oracle"
// can rank two policies the wrong way round; compare expected mean
// rewards, or the best fixed arm (FixedArmValues), instead.
func (s *Scenario) Stateful() bool {
	for _, p := range s.Providers {
		if p.RateLimit != nil || (p.Capacity > 0 && float64(p.Capacity) < 10*s.Traffic.Rate) {
			return true
		}
	}
	return false
}

// ArmValue is one arm's expected mean reward when it serves every request.
type ArmValue struct {
	Arm                string  `json:"arm"`
	ExpectedMeanReward float64 `json:"expected_mean_reward"`
}

// FixedArmValues runs the scenario once per arm with a policy that always
// chooses that arm (when the rules leave it; else the first candidate), on
// o's seed and request count, and returns each arm's expected mean reward,
// best first. It is a policy-independent reference: every figure comes
// from a run whose load the fixed choice created itself, so the best of
// them does not depend on the policy being evaluated (unlike the oracle in
// a Stateful scenario). o.Policy, o.Sink and o.Shadow are ignored.
func FixedArmValues(ctx context.Context, o Opts) ([]ArmValue, error) {
	if o.Scenario == nil {
		return nil, fmt.Errorf("sim: fixed arms: no scenario")
	}
	out := make([]ArmValue, 0, len(o.Scenario.Providers))
	for _, p := range o.Scenario.Providers {
		run := o
		run.Policy, run.Sink, run.Shadow = fixedArm{id: p.Name}, nil, nil
		res, err := Run(ctx, run)
		if err != nil {
			return nil, fmt.Errorf("sim: fixed arm %s: %w", p.Name, err)
		}
		out = append(out, ArmValue{Arm: p.Name, ExpectedMeanReward: res.ExpectedMeanReward})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ExpectedMeanReward > out[j].ExpectedMeanReward })
	return out, nil
}

// fixedArm always chooses one arm (the first candidate when the rules
// removed it). It does not learn.
type fixedArm struct{ id string }

func (f fixedArm) Name() string { return "fixed:" + f.id }

func (f fixedArm) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	k := 0
	for i := range cands {
		if cands[i].ID == f.id {
			k = i
			break
		}
	}
	for i := range cands {
		probs[i] = 0
	}
	probs[k] = 1
	return k, nil
}

func (fixedArm) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }
