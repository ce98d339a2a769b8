package offline_test

// The synthetic world of package replay's statistical tests (copied: test
// helpers are not importable across packages).

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
)

// The synthetic world of the statistical tests: three task types, four
// arms, Bernoulli rewards whose mean depends on task and arm. The best arm
// differs per task, so a context-aware target is worth evaluating.
var (
	synthTasks = []string{"code", "chat", "math"}
	synthArms  = arms("m0", "m1", "m2", "m3")
	synthMean  = [3][4]float64{
		{0.30, 0.80, 0.50, 0.40}, // code: m1 best
		{0.60, 0.40, 0.70, 0.20}, // chat: m2 best
		{0.20, 0.50, 0.30, 0.90}, // math: m3 best
	}
	// The logger is ε-greedy around a mediocre arm per task.
	synthLoggerGreedy = [3]int{2, 0, 1}
	synthEpsilon      = 0.3
)

// taskPolicy plays the probabilities table[task] over the four synthetic
// arms (in catalogue order) and draws its choice from them.
type taskPolicy struct {
	name  string
	table [3][4]float64
	rng   *rand.Rand
}

func (p *taskPolicy) Name() string { return p.name }

func (p *taskPolicy) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	t := taskIndex(f.Task)
	if t < 0 {
		return 0, fmt.Errorf("unknown task %q", f.Task)
	}
	copy(probs, p.table[t][:len(cands)])
	u, chosen := p.rng.Float64(), len(cands)-1
	for i := range cands {
		if u -= probs[i]; u < 0 {
			chosen = i
			break
		}
	}
	return chosen, nil
}

func (*taskPolicy) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

func taskIndex(task string) int {
	for i, t := range synthTasks {
		if t == task {
			return i
		}
	}
	return -1
}

func loggerTable() (tab [3][4]float64) {
	for t := range tab {
		for a := range tab[t] {
			tab[t][a] = synthEpsilon / 4
		}
		tab[t][synthLoggerGreedy[t]] += 1 - synthEpsilon
	}
	return tab
}

// Targets: the oracle (best arm per task, deterministic) and a softmax-ish
// stochastic policy.
func oracleTable() (tab [3][4]float64) {
	for t := range tab {
		best := 0
		for a := range tab[t] {
			if synthMean[t][a] > synthMean[t][best] {
				best = a
			}
		}
		tab[t][best] = 1
	}
	return tab
}

// trueValue is the exact value of a task policy: tasks are uniform.
func trueValue(tab [3][4]float64) float64 {
	v := 0.0
	for t := range tab {
		for a := range tab[t] {
			v += tab[t][a] * synthMean[t][a] / 3
		}
	}
	return v
}

// synthSource generates n logged rows from seed on every Scan (the same
// rows each time), streaming: memory does not grow with n. With vector
// set, requests carry a one-hot task vector for the ridge model.
type synthSource struct {
	n      int64
	seed   uint64
	vector bool
}

func (s synthSource) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	rng := rand.New(rand.NewPCG(s.seed, 0xda7a))
	logger := &taskPolicy{name: "logger", table: loggerTable(), rng: rand.New(rand.NewPCG(s.seed, 0x1099e7))}
	var r decision.Record
	r.Decision.Candidates = synthArms
	r.Decision.Probs = make([]float64, len(synthArms))
	vec := make([]float64, 3)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%d", i)
	}
	for i := int64(0); i < s.n; i++ {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		t := rng.IntN(3)
		r.Request.ID = ids[i%1024] // cross-fitting hashes the id; 1024 distinct ids spread rows over folds
		r.Request.Features.Task = synthTasks[t]
		if s.vector {
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
		if rng.Float64() < synthMean[t][c] {
			r.Reward = 1
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

var synthTruth = map[string]float64{"oracle": trueValue(oracleTable())}

// tinyLog: two arms a, b; two rows logged uniformly, two with μ = (¼, ¾).
func tinyLog() replay.Records {
	return replay.Records{
		rec("r1", []float64{0.5, 0.5}, 0, 1),
		rec("r2", []float64{0.5, 0.5}, 1, 0),
		rec("r3", []float64{0.25, 0.75}, 0, 0.5),
		rec("r4", []float64{0.25, 0.75}, 1, 1),
	}
}
func arms(ids ...string) []decision.Arm {
	out := make([]decision.Arm, len(ids))
	for i, id := range ids {
		out[i] = decision.Arm{ID: id}
	}
	return out
}

func rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return decision.Record{
		Request:  decision.Request{ID: id},
		Decision: decision.Decision{Candidates: arms("a", "b"), Probs: probs, Chosen: chosen},
		Reward:   reward,
	}
}
