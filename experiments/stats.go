package experiments

import (
	"fmt"
	"math"

	"github.com/routelab/routelab/sim"
	"gonum.org/v1/gonum/stat/distuv"
)

// Metric is one per-cell number compared across policies.
type Metric struct {
	// Name is the metric's key in specs and results ("regret").
	Name string
	// Title is its heading in reports.
	Title string
	// HigherIsBetter orients the verdict of paired comparisons.
	HigherIsBetter bool
	// Format is the fmt verb its values are printed with.
	Format string
	// Value extracts the metric from a cell's result.
	Value func(*sim.Result) float64
}

var metrics = []Metric{
	{Name: "mean_reward", Title: "mean reward", HigherIsBetter: true, Format: "%.4f",
		Value: func(r *sim.Result) float64 { return r.MeanReward }},
	{Name: "oracle_ratio", Title: "reward / oracle", HigherIsBetter: true, Format: "%.4f",
		Value: OracleRatio},
	{Name: "regret", Title: "regret", Format: "%.1f",
		Value: func(r *sim.Result) float64 { return r.Regret }},
	{Name: "cost", Title: "cost ($)", Format: "%.4f",
		Value: func(r *sim.Result) float64 { return r.CostTotal }},
	{Name: "latency_p50", Title: "p50 latency (ms)", Format: "%.1f",
		Value: func(r *sim.Result) float64 { return r.LatencyP50MS }},
	{Name: "latency_p99", Title: "p99 latency (ms)", Format: "%.1f",
		Value: func(r *sim.Result) float64 { return r.LatencyP99MS }},
	{Name: "failure_rate", Title: "failure rate", Format: "%.4f",
		Value: func(r *sim.Result) float64 { return r.FailureRate }},
}

// OracleRatio is the fraction of the oracle's reward a run reached:
// ExpectedMeanReward / OracleMeanReward. It uses the chosen arms' expected
// reward rather than the realised one, so it is the same quantity regret
// is built from, without the outcome noise; 0 when the oracle's is 0.
func OracleRatio(r *sim.Result) float64 {
	if r.OracleMeanReward == 0 {
		return 0
	}
	return r.ExpectedMeanReward / r.OracleMeanReward
}

// MetricNames lists every metric's name in report order.
func MetricNames() []string {
	out := make([]string, len(metrics))
	for i, m := range metrics {
		out[i] = m.Name
	}
	return out
}

// MetricByName returns the metric called name.
func MetricByName(name string) (Metric, bool) {
	for _, m := range metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Interval is a sample mean with a two-sided Student-t confidence interval.
// With fewer than two values the interval is undefined: Lo and Hi are NaN.
type Interval struct {
	N     int
	Mean  float64
	SD    float64 // sample standard deviation (n−1)
	Lo    float64
	Hi    float64
	Level float64
}

// HalfWidth is (Hi − Lo)/2, NaN when the interval is undefined.
func (iv Interval) HalfWidth() float64 { return (iv.Hi - iv.Lo) / 2 }

// Defined reports whether the interval has bounds (N ≥ 2).
func (iv Interval) Defined() bool { return !math.IsNaN(iv.Lo) && !math.IsNaN(iv.Hi) }

// MeanCI returns the mean of xs and its two-sided Student-t interval at
// level: mean ± t_{n−1, (1+level)/2} · sd/√n. The t interval assumes the
// values are independent draws of a roughly normal quantity; across seeds
// the first holds by construction and the second improves with run length
// (each value is itself a mean of many requests).
func MeanCI(xs []float64, level float64) Interval {
	n := len(xs)
	iv := Interval{N: n, Level: level, Mean: math.NaN(), SD: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	if n == 0 {
		return iv
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	iv.Mean = sum / float64(n)
	if n < 2 {
		return iv
	}
	var ss float64
	for _, x := range xs {
		d := x - iv.Mean
		ss += d * d
	}
	iv.SD = math.Sqrt(ss / float64(n-1))
	h := tQuantile(level, n-1) * iv.SD / math.Sqrt(float64(n))
	iv.Lo, iv.Hi = iv.Mean-h, iv.Mean+h
	return iv
}

func tQuantile(level float64, df int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile(1 - (1-level)/2)
}

// Verdict is the outcome of a paired comparison with the baseline.
type Verdict string

// Verdicts of Compare.
const (
	Better     Verdict = "significantly better"
	Worse      Verdict = "significantly worse"
	NoEvidence Verdict = "no evidence"
	// NotAvailable: fewer than two seeds, no interval.
	NotAvailable Verdict = "n/a"
)

// Paired is the paired difference of a metric between a policy and the
// baseline over the same seeds (common random numbers): Diff is the
// interval of policy − baseline, P the two-sided p-value of the paired t
// test of "no difference".
type Paired struct {
	Diff    Interval
	P       float64
	Verdict Verdict
}

// Compare returns the paired difference x − base (x[i] and base[i] from the
// same seed) at level. The verdict is Better or Worse when the interval
// excludes 0, oriented by higherIsBetter, else NoEvidence. When every
// difference is the same the interval is that point: identical results give
// NoEvidence with P = 1, a constant non-zero shift a verdict with P = 0.
// Samples of different lengths are an error: they cannot be paired.
func Compare(x, base []float64, level float64, higherIsBetter bool) (Paired, error) {
	if len(x) != len(base) {
		return Paired{}, fmt.Errorf("compare: %d values against %d baseline values: not paired", len(x), len(base))
	}
	d := make([]float64, len(x))
	for i := range x {
		d[i] = x[i] - base[i]
	}
	iv := MeanCI(d, level)
	out := Paired{Diff: iv, P: math.NaN(), Verdict: NotAvailable}
	if !iv.Defined() {
		return out, nil
	}
	switch {
	case iv.SD == 0 && iv.Mean == 0:
		out.P = 1
	case iv.SD == 0:
		out.P = 0
	default:
		t := iv.Mean / (iv.SD / math.Sqrt(float64(iv.N)))
		out.P = 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(iv.N - 1)}.Survival(math.Abs(t))
	}
	switch {
	case iv.Lo > 0:
		out.Verdict = orient(higherIsBetter)
	case iv.Hi < 0:
		out.Verdict = orient(!higherIsBetter)
	default:
		out.Verdict = NoEvidence
	}
	return out, nil
}

func orient(better bool) Verdict {
	if better {
		return Better
	}
	return Worse
}
