// Package experiments runs routing-policy experiments on the simulator: a
// YAML spec names policies, scenarios and seeds; every (policy, scenario,
// seed) cell is an independent sim.Run on a worker pool; the results are
// summarised across seeds with Student-t confidence intervals, every policy
// is compared with a baseline by paired differences over the same seeds
// (common random numbers), and a report (Markdown, and HTML with SVG
// figures) plus Parquet tables of cells and time-series windows are written
// to a directory. See docs/experiments.md for the spec format.
//
// The main calls:
//
//	spec, err := experiments.LoadSpec("examples/experiments/bandits.yaml")
//	res, err := experiments.Run(ctx, spec, experiments.Opts{Registry: policy.NewBuiltinRegistry()})
//	analysis, err := experiments.Write("out/bandits", res)
//
// Each cell builds a fresh policy from its spec, seeded with
// sim.PolicySeed(seed) unless the spec sets a seed, so a cell is a
// deterministic function of the spec and its seed and the results do not
// depend on Opts.Parallel. The policy registry is injected (the program
// builds it), so this package knows nothing of which policies exist.
//
// Sharding: RunShard runs one slice of the cells (Shard{I, N}: the cells
// whose grid index is I mod N) and WritePartial stores it; Merge
// reassembles the Results of the whole grid from every slice (ReadPartials),
// equal to one Run's, so that Write gives the same report and tables:
//
//	p, err := experiments.RunShard(ctx, spec, opts, experiments.Shard{Index: 0, Count: 4})
//	_, err = experiments.WritePartial("out/bandits", p)
//	...
//	parts, err := experiments.ReadPartials("out/bandits")
//	res, err := experiments.Merge(parts, reg, "")
//
// Statistics: MeanCI is the mean with a two-sided Student-t interval over
// seeds; Compare is the paired t interval of the per-seed difference from
// the baseline, with a two-sided p-value and a verdict (significantly
// better, significantly worse, no evidence) oriented by the metric's
// direction. No correction is made for multiple comparisons unless the
// spec asks for Bonferroni.
//
// The report is a deterministic function of the spec (no wall-clock facts),
// so committed reports (experiments/reports, `make reports`) regenerate
// byte for byte. It opens with a summary (best policy per scenario beside
// the best simple baseline) and a table of contents; time-series figures
// mark the scenario's timed events (ScenarioEvents: outages, drifts), and on
// scenarios whose best model depends on the task the arm shares are drawn
// per task (counted by a sim sink in each cell). Spec.HorizonWarnings names
// the events a shortened run never reaches; the CLI prints them and the
// report repeats them.
package experiments
