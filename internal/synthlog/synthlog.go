// Package synthlog is the synthetic bandit world of routelab's off-policy
// tests (replay, offline): three task types, four arms, Bernoulli rewards
// whose mean depends on task and arm, a logger that is ε-greedy around a
// mediocre arm per task, and the exact value of any task policy. It lives
// in one place so that every test package logs and scores the same world.
package synthlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/routelab/routelab/decision"
)

// The world: the best arm differs per task, so a context-aware target is
// worth evaluating.
var (
	Tasks = []string{"code", "chat", "math"}
	Arms  = MakeArms("m0", "m1", "m2", "m3")
	Mean  = [3][4]float64{
		{0.30, 0.80, 0.50, 0.40}, // code: m1 best
		{0.60, 0.40, 0.70, 0.20}, // chat: m2 best
		{0.20, 0.50, 0.30, 0.90}, // math: m3 best
	}
	// LoggerGreedy is the logger's greedy arm per task; Epsilon its
	// exploration rate.
	LoggerGreedy = [3]int{2, 0, 1}
	Epsilon      = 0.3
)

// TaskPolicy plays the probabilities Table[task] over the four arms (in
// catalogue order) and draws its choice from them with Rng. It does not
// learn.
type TaskPolicy struct {
	Label string
	Table [3][4]float64
	Rng   *rand.Rand
}

// Name returns Label.
func (p *TaskPolicy) Name() string { return p.Label }

// Select fills the task's probabilities and draws a choice.
func (p *TaskPolicy) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	t := TaskIndex(f.Task)
	if t < 0 {
		return 0, fmt.Errorf("unknown task %q", f.Task)
	}
	copy(probs, p.Table[t][:len(cands)])
	u, chosen := p.Rng.Float64(), len(cands)-1
	for i := range cands {
		if u -= probs[i]; u < 0 {
			chosen = i
			break
		}
	}
	return chosen, nil
}

// Update does nothing: a TaskPolicy is fixed.
func (*TaskPolicy) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

// TaskIndex is task's index in Tasks, or -1.
func TaskIndex(task string) int {
	for i, t := range Tasks {
		if t == task {
			return i
		}
	}
	return -1
}

// LoggerTable is the logger's probabilities: ε/4 everywhere, plus 1−ε on
// the greedy arm.
func LoggerTable() (tab [3][4]float64) {
	for t := range tab {
		for a := range tab[t] {
			tab[t][a] = Epsilon / 4
		}
		tab[t][LoggerGreedy[t]] += 1 - Epsilon
	}
	return tab
}

// OracleTable plays the best arm per task (deterministic).
func OracleTable() (tab [3][4]float64) {
	for t := range tab {
		best := 0
		for a := range tab[t] {
			if Mean[t][a] > Mean[t][best] {
				best = a
			}
		}
		tab[t][best] = 1
	}
	return tab
}

// SoftTable is a stochastic policy leaning to the best arms.
func SoftTable() [3][4]float64 {
	return [3][4]float64{
		{0.1, 0.6, 0.2, 0.1},
		{0.2, 0.1, 0.6, 0.1},
		{0.1, 0.2, 0.1, 0.6},
	}
}

// TrueValue is the exact value of a task policy: tasks are uniform.
func TrueValue(tab [3][4]float64) float64 {
	v := 0.0
	for t := range tab {
		for a := range tab[t] {
			v += tab[t][a] * Mean[t][a] / 3
		}
	}
	return v
}

// Source generates N logged rows from Seed on every Scan (the same rows
// each time), streaming: memory does not grow with N. With Vector set,
// requests carry a one-hot task vector for the ridge model.
type Source struct {
	N      int64
	Seed   uint64
	Vector bool
}

// Scan implements replay.Source.
func (s Source) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	rng := rand.New(rand.NewPCG(s.Seed, 0xda7a))
	logger := &TaskPolicy{Label: "logger", Table: LoggerTable(), Rng: rand.New(rand.NewPCG(s.Seed, 0x1099e7))}
	var r decision.Record
	r.Decision.Candidates = Arms
	r.Decision.Probs = make([]float64, len(Arms))
	vec := make([]float64, 3)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%d", i)
	}
	for i := int64(0); i < s.N; i++ {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		t := rng.IntN(3)
		r.Request.ID = ids[i%1024] // cross-fitting hashes the id; 1024 distinct ids spread rows over folds
		r.Request.Features.Task = Tasks[t]
		if s.Vector {
			clear(vec)
			vec[t] = 1
			r.Request.Features.Vector = vec
		}
		c, err := logger.Select(ctx, &r.Request.Features, r.Decision.Candidates, r.Decision.Probs)
		if err != nil {
			return err
		}
		r.Decision.Chosen = c
		r.Reward = 0
		if rng.Float64() < Mean[t][c] {
			r.Reward = 1
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// MakeArms builds arms with the given ids.
func MakeArms(ids ...string) []decision.Arm {
	out := make([]decision.Arm, len(ids))
	for i, id := range ids {
		out[i] = decision.Arm{ID: id}
	}
	return out
}

// Rec is one hand-made logged row over arms a and b.
func Rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return decision.Record{
		Request:  decision.Request{ID: id},
		Decision: decision.Decision{Candidates: MakeArms("a", "b"), Probs: probs, Chosen: chosen},
		Reward:   reward,
	}
}

// TinyLog: two arms a, b; two rows logged uniformly, two with μ = (¼, ¾).
func TinyLog() []decision.Record {
	return []decision.Record{
		Rec("r1", []float64{0.5, 0.5}, 0, 1),
		Rec("r2", []float64{0.5, 0.5}, 1, 0),
		Rec("r3", []float64{0.25, 0.75}, 0, 0.5),
		Rec("r4", []float64{0.25, 0.75}, 1, 1),
	}
}

// Collector is a sink (route.Sink) that keeps copies of the records a
// simulation logs (the core reuses their slices), keeping of each arm only
// its id — what the decision log keeps too — and interning candidate sets,
// which in the built-in scenarios are the same on every request.
type Collector struct {
	Recs  []decision.Record
	cands map[string][]decision.Arm
}

// Log keeps a copy of rec.
func (c *Collector) Log(rec *decision.Record) {
	if c.cands == nil {
		c.cands = map[string][]decision.Arm{}
	}
	var key strings.Builder
	for _, a := range rec.Decision.Candidates {
		key.WriteString(a.ID)
		key.WriteByte(0)
	}
	cs, ok := c.cands[key.String()]
	if !ok {
		cs = make([]decision.Arm, len(rec.Decision.Candidates))
		for i, a := range rec.Decision.Candidates {
			cs[i] = decision.Arm{ID: a.ID}
		}
		c.cands[key.String()] = cs
	}
	r := *rec
	r.Decision.Candidates = cs
	r.Decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	r.Outcome.Attempts = nil
	c.Recs = append(c.Recs, r)
}
