package experiments

import (
	"errors"
	"fmt"
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
		for pi, pol := range a.Policies {
			cs := cells(si, pi)
			for _, c := range cs {
				if c.Result == nil || c.Scenario != scName || c.Policy != pol {
					return nil, fmt.Errorf("analyze: cell of (scenario %q, policy %q) missing or out of order", scName, pol)
				}
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
	s := Series{Scenario: scenario, Policy: pol, End: make([]float64, nw), Mid: make([]float64, nw), Regret: make([]Interval, nw),
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
	}
	return s
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
		s, ok := a.Summary(scenario, p, "oracle_ratio")
		if ok && (best == "" || s.Mean > bestV) {
			best, bestV = p, s.Mean
		}
	}
	return best
}
