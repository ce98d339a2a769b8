package policy_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// ExampleLinUCB routes by task: an encoder turns the request into a vector,
// and LinUCB learns which model answers which task best.
func ExampleLinUCB() {
	enc, _ := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Tasks: []string{"code", "chat"}})
	p, _ := policy.NewLinUCB(policy.LinUCBOpts{Alpha: 0.5, LinearOpts: policy.LinearOpts{Dim: enc.Dim()}})
	cands := []decision.Arm{{ID: "coder"}, {ID: "chatter"}}
	quality := map[string]map[string]float64{
		"coder":   {"code": 0.9, "chat": 0.4},
		"chatter": {"code": 0.3, "chat": 0.8},
	}
	probs := make([]float64, len(cands))
	for i := 0; i < 200; i++ {
		f := &decision.Features{Task: []string{"code", "chat"}[i%2]}
		f.Vector = enc.Encode(f, nil)
		c, _ := p.Select(context.Background(), f, cands, probs)
		_ = p.Update(f, cands, c, quality[cands[c].ID][f.Task])
	}
	for _, task := range []string{"code", "chat"} {
		f := &decision.Features{Task: task}
		f.Vector = enc.Encode(f, nil)
		c, _ := p.Select(context.Background(), f, cands, probs)
		mean, _, _ := p.Predict(f, cands[c].ID)
		fmt.Printf("%s -> %s (predicted %.1f)\n", task, cands[c].ID, mean)
	}
	// Output:
	// code -> coder (predicted 0.9)
	// chat -> chatter (predicted 0.8)
}

// ExampleLoad saves a learning policy and rebuilds it from the snapshot
// alone: the restored copy makes the same decisions.
func ExampleLoad() {
	reg := policy.NewBuiltinRegistry()
	p, _ := reg.NewFromString("thompson=seed:7")
	cands := []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	for i := 0; i < 30; i++ {
		_ = p.Update(nil, cands, i%3, float64(i%3)/2)
	}
	var buf bytes.Buffer
	_ = p.(policy.Snapshotter).Snapshot(&buf)
	q, err := policy.Load(reg, bytes.NewReader(buf.Bytes()))
	if err != nil {
		fmt.Println(err)
		return
	}
	probs := make([]float64, 3)
	same := true
	for i := 0; i < 100; i++ {
		c1, _ := p.Select(context.Background(), nil, cands, probs)
		c2, _ := q.Select(context.Background(), nil, cands, probs)
		same = same && c1 == c2
	}
	fmt.Println(q.Name(), "same decisions:", same)
	// Output: thompson same decisions: true
}
