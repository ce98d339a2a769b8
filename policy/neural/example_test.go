package neural_test

import (
	"context"
	"fmt"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy/neural"
)

// A NeuralLinear learns which of two arms suits each of four contexts —
// an XOR of two features, which no model linear in them expresses.
func Example() {
	p, err := neural.NewNeuralLinear(neural.Opts{Hidden: []int{16, 8}, Explore: neural.UCB, Retrain: 100, Steps: 100, LR: 0.01, Seed: 1})
	if err != nil {
		panic(err)
	}
	cands := []decision.Arm{{ID: "small"}, {ID: "large"}}
	probs := make([]float64, 2)
	ctx := context.Background()
	vec := func(c int) []float64 { return []float64{1, float64(c & 1), float64(c >> 1)} }
	for i := 0; i < 2000; i++ {
		c := i % 4
		f := decision.Features{Vector: vec(c)}
		k, err := p.Select(ctx, &f, cands, probs)
		if err != nil {
			panic(err)
		}
		reward := 0.2
		if k == (c&1)^(c>>1) { // "large" pays when exactly one feature is set
			reward = 0.8
		}
		if err := p.Update(&f, cands, k, reward); err != nil {
			panic(err)
		}
	}
	for c := 0; c < 4; c++ {
		f := decision.Features{Vector: vec(c)}
		k, _ := p.Select(ctx, &f, cands, probs)
		fmt.Println(vec(c)[1:], cands[k].ID, probs[:2])
	}
	// Output:
	// [0 0] small [1 0]
	// [1 0] large [0 1]
	// [0 1] large [0 1]
	// [1 1] small [1 0]
}

// Fit trains a policy from a logging policy's decisions, correcting for
// how often the logger chose each arm, and the fitted policy serves.
func ExampleNeuralLinear_Fit() {
	// A logger that played "large" 80% of the time, whatever the request.
	cands := []decision.Arm{{ID: "small"}, {ID: "large"}}
	vec := func(c int) []float64 { return []float64{1, float64(c & 1), float64(c >> 1)} }
	var log records
	for i := 0; i < 2000; i++ {
		c, k := i%4, 1
		if i%5 == 0 {
			k = 0
		}
		reward := 0.2
		if k == (c&1)^(c>>1) {
			reward = 0.8
		}
		log = append(log, decision.Record{
			Request:  decision.Request{ID: fmt.Sprint(i), Features: decision.Features{Vector: vec(c)}},
			Decision: decision.Decision{Candidates: cands, Probs: []float64{0.2, 0.8}, Chosen: k},
			Reward:   reward,
		})
	}
	p, err := neural.NewNeuralLinear(neural.Opts{Hidden: []int{16, 8}, Explore: neural.UCB, LR: 0.01, Seed: 1})
	if err != nil {
		panic(err)
	}
	st, err := offline.FitNeural(context.Background(), p, log, neural.FitOpts{Weighting: neural.IPS})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d rows, max weight %.0f\n", st.Rows, st.MaxWeight)
	probs := make([]float64, 2)
	for c := 0; c < 4; c++ {
		f := decision.Features{Vector: vec(c)}
		k, _ := p.Select(context.Background(), &f, cands, probs)
		fmt.Println(vec(c)[1:], cands[k].ID)
	}
	// Output:
	// 2000 rows, max weight 5
	// [0 0] small
	// [1 0] large
	// [0 1] large
	// [1 1] small
}
