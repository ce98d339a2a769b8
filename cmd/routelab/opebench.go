package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/replay/opebench"
	"github.com/routelab/routelab/sim"
)

// opeBenchFlags are the inputs of `routelab ope-bench`.
type opeBenchFlags struct {
	scenario   string
	logger     string
	policies   string
	seeds      int
	requests   int
	estimators string
	bootstrap  int
	json       bool
	quiet      bool
}

func newOPEBenchCmd() *cobra.Command {
	var fl opeBenchFlags
	cmd := &cobra.Command{
		Use:   "ope-bench",
		Short: "Benchmark the off-policy estimators against the simulator's ground truth (bias, RMSE, interval coverage)",
		Long: `Run a logging policy on a scenario over --seeds seeded repetitions, evaluate
each target policy on every log with routelab replay's estimators, and
compare with the target's true value: the simulator's expected reward when
the target itself serves the scenario. Targets are trained first on a
separate log of the same logger (routelab train's importance-weighted warm
start; a no-op for random and weighted) and frozen. The logging policy's
own on-policy value is benchmarked too, against each run's expected reward.

Prints per target and estimator the truth, the mean estimate, bias, RMSE,
the coverage of the nominal 95% intervals (with its standard error) and the
mean interval width — the way Open Bandit Pipeline's synthetic benchmarks
are reported.`,
		Example: `  routelab ope-bench --scenario tasks --policy random,linucb --seeds 20
  routelab ope-bench --scenario steady --logger 'thompson=floor:0.1' --policy random,ucb1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOPEBench(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.scenario, "scenario", "tasks", "built-in scenario name or scenario YAML file")
	f.StringVar(&fl.logger, "logger", "epsilon-greedy=epsilon:0.2", "logging policy spec (it must give every target's arms probability > 0)")
	f.StringVar(&fl.policies, "policy", "random,linucb", "comma-separated target policy specs")
	f.IntVar(&fl.seeds, "seeds", 20, "repetitions")
	f.IntVar(&fl.requests, "requests", 3000, "logged requests per repetition")
	f.StringVar(&fl.estimators, "estimators", "all", "all, or a comma-separated list (see routelab replay)")
	f.IntVar(&fl.bootstrap, "bootstrap", 200, "bootstrap resamples per interval")
	f.BoolVar(&fl.json, "json", false, "print one JSON object instead of a table")
	f.BoolVar(&fl.quiet, "quiet", false, "no progress on stderr")
	return cmd
}

func runOPEBench(ctx context.Context, fl opeBenchFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if fl.seeds <= 0 {
		return fmt.Errorf("--seeds %d: must be > 0", fl.seeds)
	}
	if fl.requests <= 0 {
		return fmt.Errorf("--requests %d: must be > 0", fl.requests)
	}
	if fl.bootstrap <= 0 {
		return fmt.Errorf("--bootstrap %d: must be > 0 (the intervals are what is benchmarked)", fl.bootstrap)
	}
	sc, err := sim.LoadScenario(fl.scenario)
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	ests, err := replay.ParseEstimators(fl.estimators)
	if err != nil {
		return fmt.Errorf("--estimators: %w", err)
	}
	var targets []string
	for _, s := range strings.Split(fl.policies, ",") {
		if s = strings.TrimSpace(s); s != "" {
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("--policy: no target policy")
	}
	o := opebench.Opts{Scenario: sc, Registry: newRegistry(), Logger: fl.logger, Targets: targets,
		Seeds: fl.seeds, Requests: fl.requests, Eval: replay.Opts{Estimators: ests, Bootstrap: fl.bootstrap}}
	if !fl.quiet {
		o.Progress = func(done, total int) { fmt.Fprintf(errOut, "ope-bench: repetition %d/%d\n", done, total) }
	}
	res, err := opebench.Run(ctx, o)
	if err != nil {
		return err
	}
	if fl.json {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "scenario %s, logger %s, %d repetitions × %d requests, %.0f%% intervals (%s)\n\n",
		res.Scenario, res.Logger, res.Seeds, res.Requests, 100*res.Level, res.Interval)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TARGET\tESTIMATOR\tTRUTH\tMEAN\tBIAS\tRMSE\tCOVERAGE\tWIDTH\t")
	for _, r := range res.Rows {
		cov, width := "no interval", "-"
		if r.Coverage != nil {
			cov, width = fmt.Sprintf("%.2f ± %.2f", *r.Coverage, *r.CoverageSE), fmt.Sprintf("%.4f", *r.Width)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.4f\t%+.4f\t%.4f\t%s\t%s\t\n",
			r.Target, r.Estimator, r.Truth, r.Mean, r.Bias, r.RMSE, cov, width)
	}
	return tw.Flush()
}
