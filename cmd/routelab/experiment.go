package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/routelab/routelab/experiments"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// experimentFlags are the inputs of `routelab experiment`.
type experimentFlags struct {
	spec     string
	out      string
	parallel int
	seeds    int
	requests int
	shard    string
}

func newExperimentCmd() *cobra.Command {
	var fl experimentFlags
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "Run an experiment spec (policies × scenarios × seeds) and write a report with confidence intervals",
		Long: `Run every (policy, scenario, seed) cell of an experiment spec (YAML, see
docs/experiments.md) as an independent simulation, in parallel, then write to
--out: report.md and report.html (means with Student-t confidence intervals
over seeds, paired comparisons with the baseline policy, SVG figures),
cells.parquet and windows.parquet (every cell and every time-series window,
for DuckDB or pandas), figures/*.svg and spec.yaml (the effective spec;
rerunning it repeats the experiment exactly), and policies/SCENARIO.json:
the best policy on each scenario as a policy artifact (its state at the end
of the first seed's run; "routelab policies list DIR/policies", "routelab
sim --policy-file").

--seeds and --requests override the spec for quick runs: --seeds N runs N
consecutive seeds from the spec's first seed. Results do not depend on
--parallel.

--shard I/N runs one deterministic slice of the cells (those whose index
is I modulo N) and writes it to --out as part-I-of-N.gob; "routelab
experiment merge DIR..." builds the report from all N slices, identical to
one run (see docs/scale-out.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExperiment(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.spec, "spec", "", "experiment spec YAML `FILE` (required)")
	f.StringVar(&fl.out, "out", "", "output `DIR` (default results/NAME, NAME from the spec)")
	f.IntVar(&fl.parallel, "parallel", 0, "cells simulated at once (0 = GOMAXPROCS)")
	f.IntVar(&fl.seeds, "seeds", 0, "override: run this many consecutive seeds from the spec's first seed")
	f.IntVar(&fl.requests, "requests", 0, "override: requests per cell")
	f.StringVar(&fl.shard, "shard", "", "run only slice `I/N` of the cells and write it to --out for `experiment merge`")
	_ = cmd.MarkFlagRequired("spec")
	cmd.AddCommand(newExperimentMergeCmd())
	return cmd
}

func runExperiment(ctx context.Context, fl experimentFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	switch {
	case fl.parallel < 0:
		return fmt.Errorf("--parallel %d: must be >= 0", fl.parallel)
	case fl.seeds < 0:
		return fmt.Errorf("--seeds %d: must be >= 0", fl.seeds)
	case fl.requests < 0:
		return fmt.Errorf("--requests %d: must be >= 0", fl.requests)
	}
	spec, err := experiments.LoadSpec(fl.spec)
	if err != nil {
		return fmt.Errorf("--spec: %w", err)
	}
	if fl.seeds > 0 {
		first := uint64(1)
		if v := spec.Seeds.Values(); len(v) > 0 {
			first = v[0]
		}
		spec.Seeds = experiments.Seeds{Count: fl.seeds, Base: first}
	}
	if fl.requests > 0 {
		spec.SetRequests(fl.requests)
	}
	reg := newRegistry()
	if err := spec.Validate(reg); err != nil {
		return fmt.Errorf("--spec %s: %w", fl.spec, err)
	}
	// A shortened run (--requests) can end before a scenario's outage or
	// drift: say so loudly, naming the events; the report repeats it.
	for _, w := range spec.HorizonWarnings() {
		fmt.Fprintf(errOut, "WARNING: %s\n", w)
	}
	dir := fl.out
	if dir == "" {
		dir = filepath.Join("results", spec.Name)
	}
	// Sharded runs keep no trained policies: merge writes no policy artifacts.
	opts := experiments.Opts{Registry: reg, Parallel: fl.parallel, KeepTrained: fl.shard == ""}
	total := len(spec.Policies) * len(spec.Scenarios) * len(spec.Seeds.Values())
	var shard experiments.Shard
	if fl.shard != "" {
		if shard, err = experiments.ParseShard(fl.shard); err != nil {
			return fmt.Errorf("--shard: %w", err)
		}
		total = (total - shard.Index + shard.Count - 1) / shard.Count
	}
	var bar *progressbar.ProgressBar
	if isTerminal(errOut) {
		bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription("experiment "+spec.Name),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
		opts.Progress = func(done, _ int) { _ = bar.Set(done) }
	}
	if fl.shard != "" {
		return runExperimentShard(ctx, spec, opts, shard, dir, bar, out)
	}
	res, err := experiments.Run(ctx, spec, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	a, err := experiments.Write(dir, res)
	if err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	saved, err := writeBestPolicies(dir, fl.spec, spec, res, a, errOut)
	if err != nil {
		return fmt.Errorf("--out %s: best policies: %w", dir, err)
	}
	fmt.Fprintf(out, "experiment %s: %d cells in %s on %d workers\n\n", spec.Name, len(res.Cells), res.Elapsed.Round(1e6), res.Workers)
	if err := writeExperimentOverview(out, a); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nreport: %s\n", filepath.Join(dir, experiments.FileReportHTML))
	fmt.Fprintf(out, "        %s\n", filepath.Join(dir, experiments.FileReportMD))
	fmt.Fprintf(out, "data:   %s, %s\n", filepath.Join(dir, experiments.FileCells), filepath.Join(dir, experiments.FileWindows))
	if len(saved) > 0 {
		fmt.Fprintf(out, "best policy per scenario (policy artifacts): %s\n", filepath.Join(dir, experimentPoliciesDir))
	}
	return nil
}

// writeExperimentOverview prints reward/oracle per policy and scenario,
// with the paired verdict against the baseline.
func writeExperimentOverview(out io.Writer, a *experiments.Analysis) error {
	fmt.Fprintf(out, "reward / oracle: mean ± %g%% CI half-width over %d seeds; vs baseline %s (paired)\n\n", a.Confidence*100, len(a.Seeds), a.Baseline)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprint(w, "POLICY")
	for _, sc := range a.Scenarios {
		fmt.Fprintf(w, "\t%s", sc)
	}
	fmt.Fprintln(w)
	for _, p := range a.Policies {
		fmt.Fprint(w, p)
		for _, sc := range a.Scenarios {
			s, _ := a.Summary(sc, p, "oracle_ratio")
			txt := fmt.Sprintf("%.4f", s.Mean)
			if s.Defined() {
				txt += fmt.Sprintf(" ± %.4f", s.HalfWidth())
			}
			if c, ok := a.Comparison(sc, p, "oracle_ratio"); ok {
				switch c.Verdict {
				case experiments.Better:
					txt += " (better)"
				case experiments.Worse:
					txt += " (worse)"
				case experiments.NoEvidence:
					txt += " (~)"
				}
			} else {
				txt += " (baseline)"
			}
			fmt.Fprintf(w, "\t%s", txt)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
