package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/routelab/routelab/sim"
	"github.com/spf13/cobra"
)

// simFlags are the inputs of `routelab sim`.
type simFlags struct {
	scenario string
	policy   string
	seed     uint64
	requests int
	json     bool
	log      string
	appendTo bool
	// policyFile starts from a policy artifact instead of --policy;
	// savePolicy writes the policy as an artifact after the run.
	policyFile string
	savePolicy string
	// fixedArms runs every arm alone too (always on stateful scenarios).
	fixedArms bool
	// dataset runs a benchmark table instead of a scenario (simdataset.go).
	dataset string
	// cascades are --cascade's specs, for --dataset (as benchdata's).
	cascades []string
	// budget is a spend budget (policy.ParseBudget) set on the policy.
	budget string
}

func newSimCmd() *cobra.Command {
	var fl simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a scenario's traffic routed by a policy and report reward, regret, cost and latency",
		Long: `Simulate a scenario (a built-in name, see "routelab scenarios", or a YAML
file) on a virtual clock, routing every request through the decision core
with the given policy, and report mean reward, the oracle's mean reward,
regret, cost, latency percentiles, failure rate and arm shares.

The policy is a spec as in "routelab policies": NAME or NAME=key:value;...
When the spec sets no seed, the policy's seed is derived from --seed, so the
same --seed and policy give byte-identical output (apart from the
wall-clock decisions_per_second).

--policy-file starts from a policy artifact (routelab train, neural fit, a
gateway checkpoint or an earlier --save-policy): its learned state and RNG
state, warm; it keeps learning during the run. Its encoder, reward and arms
must be the scenario's. --save-policy writes the policy after the run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fl.policyFile != "" && cmd.Flags().Changed("policy") {
				return fmt.Errorf("--policy and --policy-file: give one (the artifact names its policy)")
			}
			if fl.log == "" {
				return runSim(cmd.Context(), fl, nil, cmd.OutOrStdout())
			}
			if n, err := countLogFiles(fl.log); err != nil {
				return fmt.Errorf("--log: %w", err)
			} else if n > 0 && !fl.appendTo {
				return fmt.Errorf("--log %s already holds %d decision-log files from an earlier run: "+
					"choose an empty directory, or pass --append to add this run's decisions to them", fl.log, n)
			}
			// The simulator's decisions go through the same writer as the
			// gateway's; FullBlock because a batch job must not drop rows.
			w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: fl.log, Full: decisionlog.FullBlock})
			if err != nil {
				return fmt.Errorf("--log: %w", err)
			}
			err = runSim(cmd.Context(), fl, w, cmd.OutOrStdout())
			if cerr := w.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--log: %w", cerr)
			}
			st := w.Stats()
			fmt.Fprintf(cmd.ErrOrStderr(), "logged %d decisions to %s (%d files)\n", st.Committed, fl.log, st.Files)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.scenario, "scenario", "steady", "built-in scenario name or path to a scenario YAML file")
	f.StringVar(&fl.policy, "policy", "thompson", "policy spec: NAME or NAME=key:value;key:value")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of the traffic and provider noise (and of the policy unless its spec sets one)")
	f.IntVar(&fl.requests, "requests", 0, "number of requests (0 = the scenario's default)")
	f.BoolVar(&fl.json, "json", false, "print one JSON object instead of a table")
	f.StringVar(&fl.log, "log", "", "write every decision to this decision-log `DIR` (Parquet; read it with \"routelab logs inspect\"); refused when DIR already holds a log, unless --append")
	f.StringVar(&fl.policyFile, "policy-file", "", "start from this policy artifact (warm: its learned state, RNG included) instead of --policy; its encoder, reward and arms must match the scenario's")
	f.StringVar(&fl.savePolicy, "save-policy", "", "after the run, write the policy (with what it learned) as a policy artifact to this `FILE`")
	f.BoolVar(&fl.fixedArms, "fixed-arms", false, "also run every arm alone on the same seed and report the best fixed arm (always on scenarios with rate limits or fillable queues, where % of oracle is state-dependent)")
	f.BoolVar(&fl.appendTo, "append", false, "with --log, add to a directory that already holds decision-log files")
	f.StringVar(&fl.budget, "budget", "", "a spend `BUDGET` the policy enforces per tenant on observed spend (linear-router): USD per request, or per_request=USD,window=1h,limit=USD,eta=E; replaces the scenario's budget: block")
	f.StringVar(&fl.dataset, "dataset", "", "run a benchmark table as the environment instead of --scenario: routerbench:PATH or routellm:PATH (see simdataset.go / docs/text-routing.md)")
	f.StringArrayVar(&fl.cascades, "cascade", nil, "with --dataset: add an agreement cascade `A+B>C` (or \"auto\") as one more arm, as benchdata --cascade does; repeatable")
	return cmd
}

// runSim runs one simulation and writes its result to out. sink, when not
// nil, receives every decision record.
func runSim(ctx context.Context, fl simFlags, sink route.Sink, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if fl.requests < 0 {
		return fmt.Errorf("--requests %d: must be >= 0", fl.requests)
	}
	if fl.dataset != "" {
		return runSimDataset(ctx, fl, out)
	}
	if len(fl.cascades) > 0 {
		return errors.New("--cascade: only with --dataset (a scenario's simulated providers give no answers to compare)")
	}
	sc, err := sim.LoadScenario(fl.scenario)
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	if fl.budget != "" {
		b, err := policy.ParseBudget(fl.budget)
		if err != nil {
			return fmt.Errorf("--budget: %w", err)
		}
		sc.Budget = &b
	}
	p, err := simPolicy(fl, sc)
	if err != nil {
		return err
	}
	enc, err := simEncoder(sc)
	if err != nil {
		return fmt.Errorf("--scenario: feature encoder: %w", err)
	}
	res, err := sim.Run(ctx, sim.Opts{Scenario: sc, Policy: p, Seed: fl.seed, Requests: fl.requests, Sink: sink, Encoder: enc})
	if err != nil {
		return err
	}
	if fl.savePolicy != "" {
		a, err := artifact.New(p, sc.EncoderSpec(), sc.RewardFunc(), scenarioCatalogue(sc), artifact.Provenance{
			Source: "sim", Rows: int64(res.Requests), Seed: fl.seed, Scenario: sc.Name, Command: os.Args, CodeVersion: versionString()})
		if err != nil {
			return fmt.Errorf("--save-policy: %w", err)
		}
		if err := artifact.Write(fl.savePolicy, a); err != nil {
			return fmt.Errorf("--save-policy: %w", err)
		}
	}
	// Where the oracle depends on the state the policy created, the best
	// fixed arm (each arm run alone on the same seed) is the
	// policy-independent reference.
	view := simView{Result: res}
	if sc.Stateful() || fl.fixedArms {
		vals, err := sim.FixedArmValues(ctx, sim.Opts{Scenario: sc, Seed: fl.seed, Requests: fl.requests, Encoder: enc})
		if err != nil {
			return err
		}
		view.FixedArms = vals
		view.BestFixedArm = vals[0].Arm
		view.BestFixedExpected = &vals[0].ExpectedMeanReward
	}
	if fl.json {
		enc := json.NewEncoder(out)
		return enc.Encode(view)
	}
	return writeSimTable(out, &view)
}

// simView is what `routelab sim` prints: the run's result and, for a
// stateful scenario (or with --fixed-arms), every arm's value alone.
type simView struct {
	*sim.Result
	BestFixedArm      string         `json:"best_fixed_arm,omitempty"`
	BestFixedExpected *float64       `json:"best_fixed_expected_mean_reward,omitempty"`
	FixedArms         []sim.ArmValue `json:"fixed_arms,omitempty"`
}

// simPolicy builds the run's policy: restored from --policy-file (checked
// against the scenario's encoder, reward and arms) or built from --policy,
// seeded from --seed unless the spec sets a seed.
func simPolicy(fl simFlags, sc *sim.Scenario) (policy.Policy, error) {
	reg := newRegistry()
	if fl.policyFile != "" {
		a, err := artifact.Read(fl.policyFile)
		if err != nil {
			return nil, fmt.Errorf("--policy-file: %w", err)
		}
		if err := a.Check(sc.EncoderSpec(), sc.RewardFunc(), scenarioCatalogue(sc)); err != nil {
			return nil, fmt.Errorf("--policy-file %s vs scenario %s: %w", fl.policyFile, sc.Name, err)
		}
		p, err := a.Policy(reg)
		if err != nil {
			return nil, fmt.Errorf("--policy-file: %w", err)
		}
		return p, nil
	}
	spec, err := policy.ParseSpec(fl.policy)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	if _, ok := spec.Params["seed"]; !ok {
		spec.Params["seed"] = strconv.FormatUint(sim.PolicySeed(fl.seed), 10)
	}
	p, err := reg.New(spec)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return p, nil
}

// simEncoder builds the scenario's feature encoder (sim.Scenario.EncoderSpec:
// its `encoder:` block or the default over its tasks). Every run gets it,
// so contextual policies work and decision logs of any policy carry the
// vectors that offline training needs.
func simEncoder(sc *sim.Scenario) (policy.Encoder, error) {
	return policy.NewEncoder(sc.EncoderSpec())
}

func writeSimTable(out io.Writer, v *simView) error {
	r := v.Result
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "policy\t%s (version %s)\n", r.Policy, r.PolicyVersion)
	fmt.Fprintf(w, "scenario\t%s\n", r.Scenario)
	fmt.Fprintf(w, "seed\t%d\n", r.Seed)
	fmt.Fprintf(w, "requests\t%d (%.0f virtual seconds)\n", r.Requests, r.VirtualSeconds)
	fmt.Fprintf(w, "mean reward\t%.4f (expected %.4f)\n", r.MeanReward, r.ExpectedMeanReward)
	if r.OracleStateDependent {
		fmt.Fprintf(w, "oracle mean reward\t%.4f (state-dependent: this scenario's queues or rate limits follow the policy's own choices, so %% of oracle does not rank policies; use the best fixed arm)\n", r.OracleMeanReward)
	} else {
		fmt.Fprintf(w, "oracle mean reward\t%.4f (policy reaches %.1f%%)\n", r.OracleMeanReward, 100*r.ExpectedMeanReward/r.OracleMeanReward)
	}
	if v.BestFixedExpected != nil {
		fmt.Fprintf(w, "best fixed arm\t%s, expected %.4f alone (policy reaches %.1f%%)\n", v.BestFixedArm, *v.BestFixedExpected, 100*r.ExpectedMeanReward / *v.BestFixedExpected)
	}
	fmt.Fprintf(w, "regret\t%.1f\n", r.Regret)
	fmt.Fprintf(w, "cost total\t$%.4f\n", r.CostTotal)
	fmt.Fprintf(w, "latency p50 / p99\t%.0f ms / %.0f ms\n", r.LatencyP50MS, r.LatencyP99MS)
	fmt.Fprintf(w, "failure rate\t%.4f\n", r.FailureRate)
	fmt.Fprintf(w, "decisions/s\t%.0f\n", r.DecisionsPerSecond)
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ARM\tSHARE\tORACLE SHARE")
	arms := make([]string, 0, len(r.ArmShares))
	for a := range r.ArmShares {
		arms = append(arms, a)
	}
	sort.Strings(arms)
	for _, a := range arms {
		fmt.Fprintf(w, "%s\t%.3f\t%.3f\n", a, r.ArmShares[a], r.OracleArmShares[a])
	}
	return w.Flush()
}

func newScenariosCmd() *cobra.Command {
	var show string
	cmd := &cobra.Command{
		Use:   "scenarios",
		Short: "List the built-in simulation scenarios (--show NAME prints one's YAML to copy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if show != "" {
				b, err := sim.BuiltinScenarioYAML(show)
				if err != nil {
					return fmt.Errorf("--show: %w", err)
				}
				_, err = out.Write(b)
				return err
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tREQUESTS\tDESCRIPTION")
			for _, n := range sim.BuiltinScenarios() {
				sc, err := sim.LoadScenario(n)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\t%d\t%s\n", n, sc.Requests, sc.Description)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&show, "show", "", "print the YAML of this built-in scenario")
	return cmd
}

// countLogFiles counts the Parquet files (finished or not) under a log
// root, so that a run does not silently mix its rows with an earlier one's.
// A root that does not exist holds none.
func countLogFiles(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return filepath.SkipDir
			}
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".parquet") || strings.HasSuffix(path, ".parquet.tmp")) {
			n++
		}
		return nil
	})
	return n, err
}
