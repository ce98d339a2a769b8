// Package opebench measures the off-policy estimators of package replay
// against the simulator's ground truth, the way Open Bandit Pipeline's
// synthetic benchmarks are reported: over seeded repetitions, a logging
// policy runs a scenario and its log is handed to replay.Evaluate for each
// target policy; the target's true value is what the simulator's oracle
// expectations give for it when it serves the same scenario itself. Per
// target and estimator the result is the bias, the RMSE, and the coverage
// and mean width of the nominal intervals.
//
// Every target is first trained on a separate log of the same logger (by
// offline.Train; a no-op for policies that do not learn) and then frozen,
// so the value estimated and the value measured are those of one fixed
// policy. The logging policy's own on-policy value is benchmarked too, with
// each repetition's expected reward as its truth.
package opebench

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// Opts configures Run. Scenario and Registry are required; every other zero
// value means the documented default.
type Opts struct {
	Scenario *sim.Scenario
	// Registry builds the logger and the targets from their specs.
	Registry *policy.Registry
	// Logger is the logging policy's spec; "" means
	// "epsilon-greedy=epsilon:0.2" (full support for every target).
	Logger string
	// Targets are the specs of the policies to evaluate; nil means
	// random and linucb.
	Targets []string
	// Seeds is the number of repetitions (default 20); repetition i logs
	// with simulator seed FirstSeed+i.
	Seeds     int
	FirstSeed uint64
	// Requests per logged run (default 3000); TrainRequests for the
	// training log (default 5000); TruthRequests for each target's truth
	// run (default 50000).
	Requests, TrainRequests, TruthRequests int
	// Eval configures the estimators (Bootstrap, Level, Clip, ...); its
	// Seed is replaced per repetition.
	Eval replay.Opts
	// Progress, optional, is called after each repetition.
	Progress func(done, total int)
}

// Row is one target × estimator summary over the repetitions.
type Row struct {
	Target    string           `json:"target"`
	Estimator replay.Estimator `json:"estimator"`
	// Truth is the target's true value (for the logged policy: the mean of
	// the repetitions' expected rewards).
	Truth float64 `json:"truth"`
	// Mean is the mean estimate; Bias = Mean − Truth; RMSE the root mean
	// squared error against the truth of each repetition.
	Mean float64 `json:"mean"`
	Bias float64 `json:"bias"`
	RMSE float64 `json:"rmse"`
	// Coverage is the share of repetitions whose interval held the truth
	// (Level nominal); CoverageSE its binomial standard error. Width is
	// the mean interval width. All three are nil (JSON null) when no
	// repetition had an interval.
	Coverage   *float64 `json:"coverage"`
	CoverageSE *float64 `json:"coverage_se"`
	Width      *float64 `json:"mean_width"`
	// N counts the repetitions with an estimate, Intervals those that also
	// had an interval (replay reports none where its assumptions fail).
	N         int `json:"n"`
	Intervals int `json:"intervals"`
}

// Result is the benchmark: its settings and one Row per target × estimator.
type Result struct {
	Scenario string  `json:"scenario"`
	Logger   string  `json:"logger"`
	Seeds    int     `json:"seeds"`
	Requests int     `json:"requests"`
	Level    float64 `json:"level"`
	Interval string  `json:"interval"`
	Rows     []Row   `json:"rows"`
}

// frozen serves a policy without letting it learn.
type frozen struct{ policy.Policy }

func (frozen) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

// collect keeps a copy of every record a run logs.
type collect struct{ recs replay.Records }

func (c *collect) Log(rec *decision.Record) { c.recs = append(c.recs, rec.Clone()) }

func (o *Opts) defaults() error {
	if o.Scenario == nil {
		return fmt.Errorf("ope-bench: no scenario")
	}
	if o.Registry == nil {
		return fmt.Errorf("ope-bench: no policy registry")
	}
	if o.Logger == "" {
		o.Logger = "epsilon-greedy=epsilon:0.2"
	}
	if len(o.Targets) == 0 {
		o.Targets = []string{"random", "linucb"}
	}
	if o.Seeds == 0 {
		o.Seeds = 20
	}
	if o.Requests == 0 {
		o.Requests = 3000
	}
	if o.TrainRequests == 0 {
		o.TrainRequests = 5000
	}
	if o.TruthRequests == 0 {
		o.TruthRequests = 50000
	}
	if o.FirstSeed == 0 {
		o.FirstSeed = 1
	}
	for name, v := range map[string]int{"seeds": o.Seeds, "requests": o.Requests, "train requests": o.TrainRequests, "truth requests": o.TruthRequests} {
		if v < 0 {
			return fmt.Errorf("ope-bench: %s %d must be > 0", name, v)
		}
	}
	if o.Eval.Bootstrap < 0 {
		return fmt.Errorf("ope-bench: intervals are what is benchmarked; bootstrap %d must be >= 0", o.Eval.Bootstrap)
	}
	return nil
}

// seeds of the training and truth runs, apart from the logged ones.
const (
	trainSeed = 1 << 40
	truthSeed = 1 << 41
)

// Run runs the benchmark.
func Run(ctx context.Context, o Opts) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	enc, err := policy.NewEncoder(o.Scenario.EncoderSpec())
	if err != nil {
		return nil, fmt.Errorf("ope-bench: encoder: %w", err)
	}
	newPolicy := func(spec string, seed uint64) (policy.Policy, error) {
		s, err := policy.ParseSpec(spec)
		if err != nil {
			return nil, err
		}
		if _, ok := s.Params["seed"]; !ok {
			s.Params["seed"] = fmt.Sprint(sim.PolicySeed(seed))
		}
		return o.Registry.New(s)
	}
	logRun := func(seed uint64, n int) (replay.Records, *sim.Result, error) {
		lp, err := newPolicy(o.Logger, seed)
		if err != nil {
			return nil, nil, fmt.Errorf("ope-bench: logger %q: %w", o.Logger, err)
		}
		var c collect
		res, err := sim.Run(ctx, sim.Opts{Scenario: o.Scenario, Policy: lp, Seed: seed, Requests: n, Encoder: enc, Sink: &c})
		if err != nil {
			return nil, nil, fmt.Errorf("ope-bench: logging run (seed %d): %w", seed, err)
		}
		return c.recs, res, nil
	}

	// Train every target on its own log, freeze it, and measure its truth.
	trainLog, _, err := logRun(trainSeed, o.TrainRequests)
	if err != nil {
		return nil, err
	}
	targets := make([]replay.Target, len(o.Targets))
	truth := map[string]float64{}
	for i, spec := range o.Targets {
		p, err := newPolicy(spec, trainSeed+uint64(i))
		if err != nil {
			return nil, fmt.Errorf("ope-bench: target %q: %w", spec, err)
		}
		if _, err := offline.Train(ctx, trainLog, p, offline.TrainOpts{Seed: 1}); err != nil {
			return nil, fmt.Errorf("ope-bench: training target %q: %w", spec, err)
		}
		targets[i] = replay.Target{Name: spec, Policy: frozen{p}}
		res, err := sim.Run(ctx, sim.Opts{Scenario: o.Scenario, Policy: frozen{p}, Seed: truthSeed, Requests: o.TruthRequests, Encoder: enc})
		if err != nil {
			return nil, fmt.Errorf("ope-bench: truth run of %q: %w", spec, err)
		}
		truth[spec] = res.ExpectedMeanReward
	}

	type acc struct {
		sum, sq, cover, width float64
		n, nCI                int
		truth                 float64
	}
	accs := map[[2]string]*acc{}
	level, method := 0.95, ""
	for i := 0; i < o.Seeds; i++ {
		seed := o.FirstSeed + uint64(i)
		recs, lres, err := logRun(seed, o.Requests)
		if err != nil {
			return nil, err
		}
		eo := o.Eval
		eo.Seed = seed
		results, err := replay.Evaluate(ctx, recs, targets, eo)
		if err != nil {
			return nil, fmt.Errorf("ope-bench: evaluate (seed %d): %w", seed, err)
		}
		for _, r := range results {
			if r.Segment != "" || math.IsNaN(r.Value) {
				continue
			}
			t := truth[r.Policy]
			if r.Policy == replay.LoggedPolicy {
				t = lres.ExpectedMeanReward
			}
			k := [2]string{r.Policy, string(r.Estimator)}
			a := accs[k]
			if a == nil {
				a = &acc{}
				accs[k] = a
			}
			a.n++
			a.sum += r.Value
			a.sq += (r.Value - t) * (r.Value - t)
			a.truth += t
			if !math.IsNaN(r.CILow) {
				a.nCI++
				a.width += r.CIHigh - r.CILow
				if r.CILow <= t && t <= r.CIHigh {
					a.cover++
				}
				method = r.Interval
			}
		}
		if o.Progress != nil {
			o.Progress(i+1, o.Seeds)
		}
	}
	if o.Eval.Level > 0 {
		level = o.Eval.Level
	}
	out := &Result{Scenario: o.Scenario.Name, Logger: o.Logger, Seeds: o.Seeds, Requests: o.Requests, Level: level, Interval: method}
	order := append([]string{replay.LoggedPolicy}, o.Targets...)
	for _, name := range order {
		var keys [][2]string
		for k := range accs {
			if k[0] == name {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return estRank(keys[i][1]) < estRank(keys[j][1]) })
		for _, k := range keys {
			a := accs[k]
			n, nCI := float64(a.n), float64(a.nCI)
			row := Row{Target: k[0], Estimator: replay.Estimator(k[1]), Truth: a.truth / n, Mean: a.sum / n,
				RMSE: math.Sqrt(a.sq / n), N: a.n, Intervals: a.nCI}
			if a.nCI > 0 {
				cov, width := a.cover/nCI, a.width/nCI
				se := math.Sqrt(cov * (1 - cov) / nCI)
				row.Coverage, row.CoverageSE, row.Width = &cov, &se, &width
			}
			row.Bias = row.Mean - row.Truth
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

// estRank orders estimators as replay.AllEstimators does.
func estRank(e string) int {
	if e == "on-policy" {
		return -1
	}
	for i, x := range replay.AllEstimators() {
		if string(x) == e {
			return i
		}
	}
	return len(replay.AllEstimators())
}
