package decision

import "testing"

func TestRecordCloneIsDeep(t *testing.T) {
	r := Record{
		Request:  Request{ID: "a", Features: Features{Tags: []string{"k=v"}, Vector: []float64{1, 2}}},
		Decision: Decision{Candidates: []Arm{{ID: "x"}, {ID: "y"}}, Probs: []float64{0.5, 0.5}, Chosen: 1},
		Outcome:  Outcome{Attempts: []Attempt{{Arm: "y"}}},
	}
	c := r.Clone()
	r.Request.Features.Tags[0] = "changed"
	r.Request.Features.Vector[0] = 9
	r.Decision.Candidates[0].ID = "z"
	r.Decision.Probs[0] = 1
	r.Outcome.Attempts[0].Arm = "z"
	if c.Request.Features.Tags[0] != "k=v" || c.Request.Features.Vector[0] != 1 || c.Decision.Candidates[0].ID != "x" ||
		c.Decision.Probs[0] != 0.5 || c.Outcome.Attempts[0].Arm != "y" {
		t.Fatalf("clone shares memory with the original: %+v", c)
	}
	if c.Request.ID != "a" || c.Decision.Chosen != 1 {
		t.Fatalf("clone lost scalar fields: %+v", c)
	}
}
