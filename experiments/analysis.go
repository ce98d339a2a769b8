package experiments

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Summary is one metric of one policy on one scenario, across seeds.
type Summary struct {
	Scenario string
	Policy   string
	Metric   string
	Interval
}

// Comparison is a policy's paired difference from the baseline on one
// scenario and metric (policy − baseline, paired by seed).
type Comparison struct {
	Scenario string
	Policy   string
	Baseline string
	Metric   string
	Paired
}

// Series is a policy's time series on a scenario, across seeds, window by
// window (windows are counted in requests, so they align across seeds).
type Series struct {
	Scenario string
	Policy   string
	// End is the number of requests at each window's end; Mid at its
	// middle.
	End []float64
	Mid []float64
	// Regret is the cumulative regret at each window's end.
	Regret []Interval
	// Arms are the arms seen in any seed, sorted; ArmShares[arm][w] and
	// OracleArmShares[arm][w] are mean shares in window w over seeds.
	Arms            []string
	ArmShares       map[string][]float64
	OracleArmShares map[string][]float64
	// Start is the mean virtual time (seconds from the scenario's start)
	// at each window's first request.
	Start []float64
	// Tasks are the scenario's task types when it has several; then
	// TaskArmShares[task][arm][w] is the share of arm among window w's
	// requests of that task, pooled over seeds (NaN when the window has
	// none).
	Tasks         []string
	TaskArmShares map[string]map[string][]float64
}

// RequestAt maps a virtual time (seconds from the start) to the number of
// requests that arrived by then, interpolating between windows; ok is
// false past the last window's start.
func (s Series) RequestAt(sec float64) (req float64, ok bool) {
	n := len(s.Start)
	if n == 0 || sec > s.Start[n-1] {
		return 0, false
	}
	first := func(w int) float64 {
		if w == 0 {
			return 0
		}
		return s.End[w-1]
	}
	for w := 1; w < n; w++ {
		if sec <= s.Start[w] {
			t0, t1 := s.Start[w-1], s.Start[w]
			if t1 <= t0 {
				return first(w), true
			}
			return first(w-1) + (sec-t0)/(t1-t0)*(first(w)-first(w-1)), true
		}
	}
	return first(n - 1), true
}

// Analysis is what the report shows: per-metric intervals across seeds,
// paired comparisons with the baseline, and time series.
type Analysis struct {
	Name       string
	Confidence float64
	// ComparisonLevel is the level of the paired comparisons' intervals:
	// Confidence, or Confidence adjusted by the spec's correction.
	ComparisonLevel float64
	Correction      string
	Baseline        string
	// Metrics are the reported metrics (the spec's); Summaries and
	// Comparisons cover every metric of MetricNames.
	Metrics   []Metric
	Scenarios []string
	Policies  []string
	Seeds     []uint64
	// Summaries are ordered by scenario, policy, then metric (MetricNames
	// order); Comparisons the same, without the baseline.
	Summaries   []Summary
	Comparisons []Comparison
	Series      []Series
	// Kinds are the policies' registry names, in Policies order
	// ("random", "thompson"), to tell simple baselines from learners.
	Kinds []string
	// Stateful marks the scenarios whose oracle depends on the state the
	// policy created (sim.Scenario.Stateful): ranked by mean reward.
	Stateful map[string]bool
	// Events are each scenario's timed events (ScenarioEvents); Horizon
	// its shortest run in virtual seconds. Events at or past the horizon
	// were never reached.
	Events  map[string][]Event
	Horizon map[string]float64

	summaryIdx, comparisonIdx map[akey]int
	seriesIdx                 map[akey]int
}

type akey struct{ scenario, policy, metric string }

func (a *Analysis) index() {
	a.summaryIdx = make(map[akey]int, len(a.Summaries))
	for i, s := range a.Summaries {
		a.summaryIdx[akey{s.Scenario, s.Policy, s.Metric}] = i
	}
	a.comparisonIdx = make(map[akey]int, len(a.Comparisons))
	for i, c := range a.Comparisons {
		a.comparisonIdx[akey{c.Scenario, c.Policy, c.Metric}] = i
	}
	a.seriesIdx = make(map[akey]int, len(a.Series))
	for i, s := range a.Series {
		a.seriesIdx[akey{s.Scenario, s.Policy, ""}] = i
	}
}

// Analyze computes the intervals, paired comparisons and series of r.
func Analyze(r *Results) (*Analysis, error) {
	if r == nil || r.Spec == nil {
		return nil, errors.New("analyze: no results")
	}
	s := r.Spec
	a := &Analysis{
		Name:       s.Name,
		Confidence: s.Report.Confidence,
		Correction: s.Report.Correction,
		Baseline:   s.Baseline,
		Metrics:    s.MetricList(),
		Scenarios:  s.ScenarioNames(),
		Policies:   s.Labels(),
		Seeds:      s.Seeds.Values(),
	}
	a.Events, a.Horizon = map[string][]Event{}, map[string]float64{}
	a.Stateful = map[string]bool{}
	for i, sc := range s.scenarios {
		a.Stateful[a.Scenarios[i]] = sc.Stateful()
	}
	for _, p := range s.policies {
		a.Kinds = append(a.Kinds, p.Name)
	}
	nPol, nSeed := len(a.Policies), len(a.Seeds)
	if len(r.Cells) != len(a.Scenarios)*nPol*nSeed {
		return nil, fmt.Errorf("analyze: %d cells, want %d scenarios × %d policies × %d seeds", len(r.Cells), len(a.Scenarios), nPol, nSeed)
	}
	base := slices.Index(a.Policies, a.Baseline)
	if base < 0 {
		return nil, fmt.Errorf("analyze: baseline %q is not a policy", a.Baseline)
	}
	a.ComparisonLevel = a.Confidence
	if a.Correction == CorrectionBonferroni && nPol > 2 {
		a.ComparisonLevel = 1 - (1-a.Confidence)/float64(nPol-1)
	}
	cells := func(sc, p int) []Cell {
		i := (sc*nPol + p) * nSeed
		return r.Cells[i : i+nSeed]
	}
	for si, scName := range a.Scenarios {
		a.Events[scName] = ScenarioEvents(s.scenarios[si])
		a.Horizon[scName] = math.Inf(1)
		for pi, pol := range a.Policies {
			cs := cells(si, pi)
			for _, c := range cs {
				if c.Result == nil || c.Scenario != scName || c.Policy != pol {
					return nil, fmt.Errorf("analyze: cell of (scenario %q, policy %q) missing or out of order", scName, pol)
				}
				a.Horizon[scName] = math.Min(a.Horizon[scName], c.Result.VirtualSeconds)
			}
			for _, m := range metrics {
				xs := values(cs, m)
				a.Summaries = append(a.Summaries, Summary{Scenario: scName, Policy: pol, Metric: m.Name, Interval: MeanCI(xs, a.Confidence)})
				if pi == base {
					continue
				}
				cmp, err := Compare(xs, values(cells(si, base), m), a.ComparisonLevel, m.HigherIsBetter)
				if err != nil {
					return nil, fmt.Errorf("analyze: %s: %w", m.Name, err)
				}
				a.Comparisons = append(a.Comparisons, Comparison{Scenario: scName, Policy: pol, Baseline: a.Baseline, Metric: m.Name, Paired: cmp})
			}
			a.Series = append(a.Series, series(scName, pol, cs, a.Confidence))
		}
	}
	a.index()
	return a, nil
}

func values(cs []Cell, m Metric) []float64 {
	xs := make([]float64, len(cs))
	for i, c := range cs {
		xs[i] = m.Value(c.Result)
	}
	return xs
}

func series(scenario, pol string, cs []Cell, level float64) Series {
	nw := len(cs[0].Result.Windows)
	for _, c := range cs[1:] {
		nw = min(nw, len(c.Result.Windows))
	}
	s := Series{Scenario: scenario, Policy: pol, End: make([]float64, nw), Mid: make([]float64, nw), Start: make([]float64, nw), Regret: make([]Interval, nw),
		ArmShares: map[string][]float64{}, OracleArmShares: map[string][]float64{}}
	arms := map[string]bool{}
	for _, c := range cs {
		for _, w := range c.Result.Windows[:nw] {
			for arm := range w.ArmShares {
				arms[arm] = true
			}
			for arm := range w.OracleArmShares {
				arms[arm] = true
			}
		}
	}
	for arm := range arms {
		s.Arms = append(s.Arms, arm)
		s.ArmShares[arm] = make([]float64, nw)
		s.OracleArmShares[arm] = make([]float64, nw)
	}
	sort.Strings(s.Arms)
	xs := make([]float64, len(cs))
	n := float64(len(cs))
	for w := range nw {
		first := cs[0].Result.Windows[w]
		s.End[w] = float64(first.First + first.Requests)
		s.Mid[w] = float64(first.First) + float64(first.Requests)/2
		for i, c := range cs {
			win := c.Result.Windows[w]
			xs[i] = win.CumulativeRegret
			for arm, v := range win.ArmShares {
				s.ArmShares[arm][w] += v / n
			}
			for arm, v := range win.OracleArmShares {
				s.OracleArmShares[arm][w] += v / n
			}
		}
		s.Regret[w] = MeanCI(xs, level)
		for _, c := range cs {
			s.Start[w] += c.Result.Windows[w].StartSeconds / n
		}
	}
	if tc := cs[0].taskCounts; tc != nil {
		s.TaskArmShares = map[string]map[string][]float64{}
		for task := range tc {
			s.Tasks = append(s.Tasks, task)
			s.TaskArmShares[task] = map[string][]float64{}
			for _, arm := range s.Arms {
				s.TaskArmShares[task][arm] = make([]float64, nw)
			}
		}
		sort.Strings(s.Tasks)
		for _, task := range s.Tasks {
			for w := range nw {
				total := 0.0
				for _, c := range cs {
					for _, arm := range s.Arms {
						if cnt := c.taskCounts[task][arm]; w < len(cnt) {
							s.TaskArmShares[task][arm][w] += cnt[w]
							total += cnt[w]
						}
					}
				}
				for _, arm := range s.Arms {
					if total == 0 {
						s.TaskArmShares[task][arm][w] = math.NaN()
					} else {
						s.TaskArmShares[task][arm][w] /= total
					}
				}
			}
		}
	}
	return s
}

// RankMetric is the metric policies are ranked by on scenario:
// "oracle_ratio", or "mean_reward" where the scenario is Stateful (its
// oracle follows the state each policy created, so the ratio can rank
// policies the wrong way round; common random numbers make the mean reward
// comparable).
func (a *Analysis) RankMetric(scenario string) string {
	if a.Stateful[scenario] {
		return "mean_reward"
	}
	return "oracle_ratio"
}

// Summary returns the summary of metric for policy on scenario.
func (a *Analysis) Summary(scenario, policy, metric string) (Summary, bool) {
	i, ok := a.summaryIdx[akey{scenario, policy, metric}]
	if !ok {
		return Summary{}, false
	}
	return a.Summaries[i], true
}

// Comparison returns policy's comparison with the baseline on scenario and
// metric; false for the baseline itself.
func (a *Analysis) Comparison(scenario, policy, metric string) (Comparison, bool) {
	i, ok := a.comparisonIdx[akey{scenario, policy, metric}]
	if !ok {
		return Comparison{}, false
	}
	return a.Comparisons[i], true
}

// SeriesOf returns policy's series on scenario.
func (a *Analysis) SeriesOf(scenario, policy string) (Series, bool) {
	i, ok := a.seriesIdx[akey{scenario, policy, ""}]
	if !ok {
		return Series{}, false
	}
	return a.Series[i], true
}

// Best returns the policy with the highest mean reward/oracle ratio on
// scenario (the first in spec order on a tie).
func (a *Analysis) Best(scenario string) string {
	best, bestV := "", 0.0
	for _, p := range a.Policies {
		s, ok := a.Summary(scenario, p, a.RankMetric(scenario))
		if ok && (best == "" || s.Mean > bestV) {
			best, bestV = p, s.Mean
		}
	}
	return best
}
