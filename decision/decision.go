package decision

import "time"

// Reasons recorded on a Decision.
const (
	ReasonPolicy = "policy" // the serving policy chose
	ReasonForced = "forced" // the caller named a model; propensity 1
)

// Shadow is a candidate policy's choice on the same request.
type Shadow struct {
	Policy string
	// Arm is the shadow's choice and Prob its probability of that choice.
	Arm  string
	Prob float64
	// LoggedProb is the shadow's probability of the arm the serving policy
	// chose (the logged action): what an off-policy estimate of the shadow
	// needs. LoggedProbKnown is false in logs written before it existed.
	LoggedProb      float64
	LoggedProbKnown bool
}

// Decision is the output of the select step: the candidate set, the
// probability of every candidate, and the choice.
type Decision struct {
	Policy        string
	PolicyVersion string
	Reason        string
	Candidates    []Arm
	Probs         []float64
	Chosen        int
	// Shadow is set when a shadow policy ran (Shadow.Policy != "").
	Shadow Shadow
}

// Arm returns the chosen candidate.
func (d *Decision) Arm() *Arm { return &d.Candidates[d.Chosen] }

// Prob returns the propensity of the chosen candidate.
func (d *Decision) Prob() float64 { return d.Probs[d.Chosen] }

// Request is one routing problem: an id, its features and, optionally, a
// model the caller insists on.
type Request struct {
	ID       string
	Features Features
	// Forced names a catalogue arm that bypasses the policy; empty = route.
	Forced string
}

// Record is everything the decision core knows about one request once it is
// done: what the log sink receives. Sinks must copy what they keep: the
// core reuses a Record's slices.
type Record struct {
	Time         time.Time
	Request      Request
	Decision     Decision
	Outcome      Outcome
	Reward       float64
	RewardSource RewardSource
}

// Clone returns a deep copy of r: its slices (tags, vector, candidates,
// probabilities, attempts) are the copy's own, so a sink may keep it after
// Log returns.
func (r *Record) Clone() Record {
	c := *r
	c.Request.Features.Tags = append([]string(nil), r.Request.Features.Tags...)
	c.Request.Features.Vector = append([]float64(nil), r.Request.Features.Vector...)
	c.Decision.Candidates = append([]Arm(nil), r.Decision.Candidates...)
	c.Decision.Probs = append([]float64(nil), r.Decision.Probs...)
	c.Outcome.Attempts = append([]Attempt(nil), r.Outcome.Attempts...)
	return c
}
