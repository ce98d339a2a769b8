package replay_test

import (
	"context"
	"fmt"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
)

// Evaluate a candidate policy (always the cheap model) on four decisions
// logged by a uniformly random policy.
func ExampleEvaluate() {
	cands := []decision.Arm{{ID: "cheap"}, {ID: "smart"}}
	logged := func(id string, chosen int, reward float64) decision.Record {
		return decision.Record{
			Request:  decision.Request{ID: id},
			Decision: decision.Decision{Candidates: cands, Probs: []float64{0.5, 0.5}, Chosen: chosen},
			Reward:   reward,
		}
	}
	log := replay.Records{
		logged("q1", 0, 0.6), logged("q2", 1, 0.9),
		logged("q3", 0, 0.4), logged("q4", 1, 0.7),
	}
	// The first line is the logging policy's own value (the mean logged
	// reward). A deterministic target: the first candidate, always. Replay keeps the
	// two rows that logged "cheap" (rewards 0.6 and 0.4); IPS weighs them by
	// 1/0.5 over all four rows; SNIPS by the sum of weights.
	res, err := replay.Evaluate(context.Background(), log,
		[]replay.Target{{Name: "always-cheap", Policy: &first{}}},
		replay.Opts{Estimators: []replay.Estimator{replay.Replay, replay.IPS, replay.SNIPS}, Bootstrap: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range res {
		fmt.Printf("%s %-6s value %.2f ess %.0f n %d\n", r.Policy, r.Estimator, r.Value, r.ESS, r.N)
	}
	// Output:
	// logged on-policy value 0.65 ess 4 n 4
	// always-cheap replay value 0.50 ess 2 n 4
	// always-cheap ips    value 0.50 ess 2 n 4
	// always-cheap snips  value 0.50 ess 2 n 4
}

// first always plays the first candidate.
type first struct{}

func (first) Name() string { return "first" }
func (first) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	for i := range cands {
		probs[i] = 0
	}
	probs[0] = 1
	return 0, nil
}
func (first) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }
