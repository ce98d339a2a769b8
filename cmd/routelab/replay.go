package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
	"github.com/routelab/routelab/sim/fromlogs"
)

// replayFlags are the inputs of `routelab replay`.
type replayFlags struct {
	logs       []string
	policies   string
	estimators string
	bootstrap  int
	level      float64
	seed       uint64
	clip       float64
	tau        float64
	lambda     float64
	tune       bool
	allowMiss  bool
	by         string
	frozen     bool
	trainSplit float64
	folds      int
	json       bool
	exportRows string
	quiet      bool
	from, to   string
	feedback   bool
	// includeOpen reads the WAL segments of files still being written.
	includeOpen bool
	skipBad     bool
	snapshots   []string
	policyFiles []string
	resimulate  bool
	scenario    string
	requests    int
	traffic     string
	clock       string
	tenantSalt  string
	routeForce  bool
}

func newReplayCmd() *cobra.Command {
	var fl replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Off-policy evaluation: estimate from decision logs how other policies would have done",
		Long: `Estimate, from decision logs (the gateway's or "routelab sim --log"'s), the
mean reward other policies would have earned on the same requests, with
bootstrap confidence intervals: replay (Li et al.), ips, clipped-ips, snips,
dm, dr, sndr, switch-dr and dr-os (see "go doc ./replay" for the formulas).

Each target policy is a spec as in "routelab policies" (NAME or
NAME=key:value;key:value; several separated by commas), or a policy
snapshot (--snapshot FILE, e.g. from "routelab train"). Targets are
evaluated frozen: they see each logged request and its candidate set and
report their probability of every candidate, but never learn from the log.
A learning policy given as a spec is therefore untrained (a fresh linucb
or ucb1 plays "the first candidate"): that is an error unless --frozen;
evaluate a trained snapshot instead, or re-simulate it (--resimulate).
Logged candidates carry only their model id, so policies that score live
profiles (weighted) see none.

The output starts with the logging policy's own value (policy "logged",
estimator on-policy: the mean logged reward), then has one line per target
and estimator: value, ci_low, ci_high (Poisson bootstrap with the reward
model refitted per resample; cut to [0,1] and marked * when it left it),
ess (Kish effective sample size), mean_w and max_w (importance weights;
mean_w far from 1 means the logger does not cover the policy), w>10
(share of rows with weight above 10), n (rows) and param (the clip, tau or
lambda used). --by task|tenant|arm repeats the table per segment. Clip, tau
and lambda default to Open Bandit Pipeline's (inf, inf, 0); --tune picks
them by estimated MSE. A policy that puts probability on arms the logger
never played is an error naming the share of rows, unless
--allow-missing-support. Warnings (missing support, low overlap, large
weights, default rewards, replay's assumptions) follow the table, or are
part of each JSON object with --json.

--export-rows FILE.csv writes per logged row the action index, reward,
pscore and the target's pi_* and the reward model's q_* per action, the
inputs of Open Bandit Pipeline's estimators (one file per target when there
are several: FILE.<policy>.csv).

A row without propensities, with propensity 0 on the chosen arm or with an
arm the target cannot handle stops the evaluation with an error naming it.
An unreadable or newer-schema log file is an error too, unless
--skip-bad-files (then it is reported and left out).

--resimulate runs each policy through the simulator instead (counterfactual
re-simulation), learning online as in "routelab sim", and reports the same
metrics as "routelab sim" (a table per policy, or with --json an array with
one object per policy). By default (--traffic logged) the simulator replays
the logged requests themselves, in arrival order: their arrival times, task
mix, tenants, tags, prompt lengths and, for answered requests, completion
lengths (a failed request's is drawn from the scenario). The providers come
from --scenario (its latency, queueing, rate limits, outages, prices and
quality; it must know every logged task type), or are fitted to the same
logs as "routelab calibrate" does. --clock says where the run's clock
starts: at the scenario's start (auto picks it when the logs begin within
a day after it, as logs of "routelab sim --log" of that scenario do), or
at the first logged request ("logs"). Logged tenants are hashes; with
--scenario, its tenants are recognised by hashing their names with
--tenant-salt (the log writer's salt; empty for "routelab sim --log").
Requests whose caller named the model stay on that model unless
--route-forced.
The trace is held in memory, about 32 bytes per request (20 million
requests at most; select fewer with --from/--to or --requests).
--traffic fitted instead simulates fresh traffic from the logs' fitted
arrival rate, diurnal curve, task and tenant mix and token lengths.`,
		Example: `  routelab replay --logs data/decisions --policy random --snapshot trained.json
  routelab replay --logs logs --snapshot linucb.json --estimators snips,dr --bootstrap 500 --json
  routelab replay --logs logs --policy random --by task --tune
  routelab replay --resimulate --logs logs --policy thompson,linucb --scenario tasks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addLogFlags(f, &fl.logs, &fl.from, &fl.to, &fl.feedback, &fl.skipBad, "join delayed feedback found under --logs into the rewards")
	f.BoolVar(&fl.includeOpen, "include-open", true, "also read the rows of log files still being written (their .wal segments), so a running gateway's last seconds count")
	f.StringVar(&fl.policies, "policy", "", "target policy specs, comma-separated: NAME or NAME=key:value;key:value")
	f.StringVar(&fl.estimators, "estimators", "all", "all, or a comma-separated list of: replay, ips, clipped-ips, snips, dm, dr, sndr, switch-dr, dr-os")
	f.IntVar(&fl.bootstrap, "bootstrap", 200, "bootstrap resamples for the confidence intervals (0 = no intervals)")
	f.Float64Var(&fl.level, "level", 0.95, "confidence level of the intervals")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of the bootstrap; with --resimulate, of the simulation (as \"routelab sim --seed\": the same seed reproduces a logged run)")
	f.Float64Var(&fl.clip, "clip", math.Inf(1), "weight cap of clipped-ips (inf = none, Open Bandit Pipeline's default: clipped-ips = ips)")
	f.Float64Var(&fl.tau, "tau", math.Inf(1), "weight threshold of switch-dr (inf, OBP's default: switch-dr = dr)")
	f.Float64Var(&fl.lambda, "lambda", 0, "shrinkage of dr-os, w -> λw/(w²+λ) (0, OBP's default: dr-os = dm; inf: dr-os = dr)")
	f.BoolVar(&fl.tune, "tune", false, "choose --clip, --tau and --lambda per policy by estimated MSE (as OBP's tuning); the PARAM column shows the choice")
	f.BoolVar(&fl.allowMiss, "allow-missing-support", false, "estimate even when a policy puts probability on arms the logger never played (by default an error naming the share of rows)")
	f.StringVar(&fl.by, "by", "", "also break the table down by segment: task, tenant or arm (the logged arm)")
	f.BoolVar(&fl.frozen, "frozen", false, "allow --policy specs of learning policies, evaluated untrained and frozen (they never learn from the log: a fresh linucb or ucb1 is \"always the first candidate\")")
	f.Float64Var(&fl.trainSplit, "train-split", 0, "time-split mode: train the --policy specs on the earliest `FRACTION` of the log (routelab train's importance-weighted warm start), then evaluate every target frozen on the rest only (no row is both learned from and evaluated on; the log is held in memory)")
	f.IntVar(&fl.folds, "folds", 2, "cross-fitting folds of the reward model (1 = fit and score on the same rows)")
	f.BoolVar(&fl.json, "json", false, "print a JSON array instead of a table")
	f.StringVar(&fl.exportRows, "export-rows", "", "write per-row OBP inputs (action, reward, pscore, pi_*, q_*) to this CSV file")
	f.BoolVar(&fl.quiet, "quiet", false, "no progress bar")
	f.StringSliceVar(&fl.snapshots, "snapshot", nil, "also evaluate the policy restored from this snapshot file (repeatable)")
	f.StringSliceVar(&fl.policyFiles, "policy-file", nil, "also evaluate the policy of this policy artifact, frozen (repeatable; from routelab train, neural fit, sim --save-policy or a gateway checkpoint)")
	f.BoolVar(&fl.resimulate, "resimulate", false, "run the policies through the simulator on the logs' traffic instead of estimating off-policy")
	f.StringVar(&fl.scenario, "scenario", "", "with --resimulate: take the providers from this scenario (name or YAML) instead of fitting them to the logs")
	f.IntVar(&fl.requests, "requests", 0, "with --resimulate: number of requests (0 = as many as the logs hold; with logged traffic, the first N)")
	f.StringVar(&fl.traffic, "traffic", "logged", "with --resimulate: logged (replay the logged requests) or fitted (fresh traffic fitted to the logs)")
	f.StringVar(&fl.clock, "clock", "auto", "with --resimulate and logged traffic: where the run's clock starts: auto, scenario (its start) or logs (the first logged request)")
	f.BoolVar(&fl.routeForce, "route-forced", false, "with --resimulate and logged traffic: let the policies route the requests whose caller named the model too (by default they stay forced)")
	f.StringVar(&fl.tenantSalt, "tenant-salt", "", "with --resimulate and --scenario: the log writer's tenant salt, to recognise the scenario's tenants in the logs")
	return cmd
}

func runReplay(ctx context.Context, fl replayFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkLogPaths(fl.logs); err != nil {
		return err
	}
	if strings.TrimSpace(fl.policies) == "" && len(fl.snapshots) == 0 && len(fl.policyFiles) == 0 {
		return fmt.Errorf("--policy: no target policy given (nor --snapshot, nor --policy-file)")
	}
	var specs []policy.Spec
	var err error
	if strings.TrimSpace(fl.policies) != "" {
		if specs, err = policy.ParseSpecs(fl.policies); err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
	}
	ests, err := replay.ParseEstimators(fl.estimators)
	if err != nil {
		return fmt.Errorf("--estimators: %w", err)
	}
	if fl.bootstrap < 0 {
		return fmt.Errorf("--bootstrap %d: must be >= 0", fl.bootstrap)
	}
	if fl.level <= 0 || fl.level >= 1 || math.IsNaN(fl.level) {
		return fmt.Errorf("--level %v: must be in (0,1)", fl.level)
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"clip", fl.clip}, {"tau", fl.tau}} {
		if !(v.v > 0) {
			return fmt.Errorf("--%s %v: must be a number > 0 (or inf)", v.name, v.v)
		}
	}
	if !(fl.lambda >= 0) {
		return fmt.Errorf("--lambda %v: must be a number >= 0 (or inf)", fl.lambda)
	}
	segment, err := segmentFunc(fl.by)
	if err != nil {
		return err
	}
	if fl.folds < 1 {
		return fmt.Errorf("--folds %d: must be >= 1", fl.folds)
	}
	// Evaluate keeps no record past its callback (and frozen targets only
	// read them in Select): the reader may reuse them.
	ropts, cleanup, err := logReaderOpts(ctx, fl.logs, fl.from, fl.to, fl.feedback, errOut)
	if err != nil {
		return err
	}
	defer cleanup()
	ropts.Log.Reuse = true
	ropts.Log.IncludeOpen = fl.includeOpen

	reg := newRegistry()
	var targets []replay.Target
	seen := map[string]bool{}
	for _, s := range specs {
		label := s.String()
		if _, ok := s.Params["seed"]; !ok && fl.resimulate {
			// As in "routelab sim": the policy's stream derives from the run
			// seed, distinct from the traffic's.
			s.Params["seed"] = strconv.FormatUint(sim.PolicySeed(fl.seed), 10)
		}
		p, err := reg.New(s)
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		if seen[label] {
			return fmt.Errorf("--policy: %q named twice", label)
		}
		if !fl.resimulate && !fl.frozen && fl.trainSplit == 0 && !staticPolicies[s.Name] {
			return fmt.Errorf("--policy %q: a learning policy built from a spec is untrained, and replay evaluates it frozen (it never learns from the log), so it would report the value of its untrained choice (e.g. always the first candidate), not of the policy as it would learn; train it on the earlier part of the log and evaluate it on the rest (--train-split 0.5), evaluate a trained snapshot (routelab train, then --snapshot FILE), re-simulate it learning (--resimulate), or pass --frozen to evaluate the untrained policy anyway", label)
		}
		seen[label] = true
		targets = append(targets, replay.Target{Name: label, Policy: p})
	}
	for _, path := range fl.snapshots {
		p, _, err := artifact.LoadPolicy(reg, path)
		if err != nil {
			return fmt.Errorf("--snapshot: %w", err)
		}
		label := p.Name() + "@" + filepath.Base(path)
		if seen[label] {
			return fmt.Errorf("--snapshot: %q named twice", label)
		}
		seen[label] = true
		targets = append(targets, replay.Target{Name: label, Policy: p})
	}

	for _, path := range fl.policyFiles {
		a, err := artifact.Read(path)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		p, err := a.Policy(reg)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		label := a.Spec + "@" + filepath.Base(path)
		if seen[label] {
			return fmt.Errorf("--policy-file: %q named twice", label)
		}
		seen[label] = true
		if !fl.resimulate {
			if p, err = newCheckedArtifact(p, a, path); err != nil {
				return err
			}
		}
		targets = append(targets, replay.Target{Name: label, Policy: p})
	}

	if fl.resimulate {
		return runResimulate(ctx, fl, ropts, targets, out, errOut)
	}
	if fl.scenario != "" || fl.requests != 0 {
		return fmt.Errorf("--scenario and --requests go with --resimulate")
	}
	if (fl.traffic != "" && fl.traffic != "logged") || (fl.clock != "" && fl.clock != "auto") || fl.tenantSalt != "" || fl.routeForce {
		return fmt.Errorf("--traffic, --clock, --tenant-salt and --route-forced go with --resimulate")
	}

	opts := replay.Opts{
		Estimators: ests, Clip: fl.clip, Tau: fl.tau, Lambda: fl.lambda, Tune: fl.tune,
		AllowMissingSupport: fl.allowMiss, Segment: segment,
		Bootstrap: fl.bootstrap, Level: fl.level, Seed: fl.seed, Folds: fl.folds,
	}
	if fl.bootstrap == 0 {
		opts.Bootstrap = -1
	}
	var exports []*rowExport
	if fl.exportRows != "" {
		exports, err = openExports(fl.exportRows, targets)
		if err != nil {
			return err
		}
		defer func() {
			for _, e := range exports {
				e.abort() // no-op after commit
			}
		}()
		obs := make(replay.Observers, len(exports))
		for i, e := range exports {
			obs[i] = e.w
		}
		opts.Observer = obs
	}

	passes := 1
	for _, e := range ests {
		if e.NeedsModel() {
			passes = 2
		}
	}
	if opts.Observer != nil {
		passes = 2
	}
	var desc []string
	if passes == 2 {
		desc = []string{"pass 1/2: fit reward model", "pass 2/2: evaluate"}
	}
	var src replay.Source = newLogSource(ropts, fl.skipBad, fl.quiet, errOut, desc...)
	if fl.trainSplit != 0 {
		if src, err = trainOnSplit(ctx, fl, ropts, specs, targets, errOut); err != nil {
			return err
		}
	}
	res, err := replay.Evaluate(ctx, src, targets, opts)
	if err != nil {
		return err
	}
	for _, e := range exports {
		if err := e.commit(); err != nil {
			return err
		}
	}
	if fl.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return writeReplayTable(out, res)
}

// trainOnSplit is --train-split: it splits the log by time, trains the
// targets built from --policy specs (the first len(specs) targets) on the
// earlier part and returns the later part, on which every target is then
// evaluated frozen.
func trainOnSplit(ctx context.Context, fl replayFlags, ropts offline.ReaderOpts, specs []policy.Spec, targets []replay.Target, errOut io.Writer) (replay.Source, error) {
	if fl.resimulate {
		return nil, fmt.Errorf("--train-split does not go with --resimulate")
	}
	ropts.Log.Reuse = false // the split keeps the records
	train, test, cut, err := offline.TimeSplit(ctx, newLogSource(ropts, fl.skipBad, true, errOut), fl.trainSplit)
	if err != nil {
		return nil, fmt.Errorf("--train-split: %w", err)
	}
	for i := range specs {
		if _, err := offline.Train(ctx, train, targets[i].Policy, offline.TrainOpts{Seed: fl.seed}); err != nil {
			return nil, fmt.Errorf("--train-split: train %s: %w", targets[i].Name, err)
		}
	}
	fmt.Fprintf(errOut, "train-split: %d policies trained on the %d rows before %s; every target evaluated on the %d rows from then on\n",
		len(specs), len(train), cut.UTC().Format(time.RFC3339Nano), len(test))
	return test, nil
}

// staticPolicies are the builtin policies that do not learn: a fresh one
// is the policy itself, so replay may evaluate it from a spec.
var staticPolicies = map[string]bool{"random": true, "weighted": true}

// segmentFunc reads --by.
func segmentFunc(by string) (func(*decision.Record) string, error) {
	switch by {
	case "":
		return nil, nil
	case "task":
		return func(r *decision.Record) string { return "task=" + r.Request.Features.Task }, nil
	case "tenant":
		return func(r *decision.Record) string { return "tenant=" + r.Request.Features.Tenant }, nil
	case "arm":
		return func(r *decision.Record) string {
			return "arm=" + r.Decision.Candidates[r.Decision.Chosen].ID
		}, nil
	}
	return nil, fmt.Errorf("--by %q: must be task, tenant or arm", by)
}

func writeReplayTable(out io.Writer, res []replay.Result) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	segs := false
	for _, r := range res {
		segs = segs || r.Segment != ""
	}
	head := "POLICY\tESTIMATOR\tVALUE\tCI_LOW\tCI_HIGH\tESS\tMEAN_W\tMAX_W\tW>10\tN\tPARAM"
	if segs {
		head = "SEGMENT\t" + head
	}
	fmt.Fprintln(w, head)
	num := func(v float64, prec int) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "-"
		}
		return fmt.Sprintf("%.*f", prec, v)
	}
	clipped := false
	methods := map[string]bool{}
	var order []string
	for _, r := range res {
		if segs {
			seg := r.Segment
			if seg == "" {
				seg = "all"
			}
			fmt.Fprintf(w, "%s\t", seg)
		}
		lo, hi := num(r.CILow, 4), num(r.CIHigh, 4)
		if r.CIClipped {
			clipped = true
			lo, hi = lo+"*", hi+"*"
		}
		param := r.Param
		if r.Tuned {
			param += " (tuned)"
		}
		if param == "" {
			param = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Policy, r.Estimator, num(r.Value, 4), lo, hi,
			num(r.ESS, 1), num(r.MeanWeight, 3), num(r.MaxWeight, 2), num(100*r.Over10, 1)+"%", r.N, param)
		if !methods[r.Interval] {
			methods[r.Interval] = true
			order = append(order, r.Interval)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nintervals: %s\n", strings.Join(order, "; "))
	if clipped {
		fmt.Fprintln(out, "* interval cut to the reward range [0,1]")
	}
	// Warnings: each once per policy (most are shared by its estimators).
	type key struct{ policy, segment, text string }
	seen := map[key]bool{}
	first := true
	for _, r := range res {
		for _, t := range r.Warnings {
			k := key{r.Policy, r.Segment, t}
			if seen[k] {
				continue
			}
			seen[k] = true
			if first {
				fmt.Fprintln(out)
				first = false
			}
			scope := r.Policy
			if r.Segment != "" {
				scope += " [" + r.Segment + "]"
			}
			if strings.HasPrefix(t, "replay ") || strings.HasPrefix(t, "undefined") || strings.HasPrefix(t, "estimate ") {
				scope += "/" + string(r.Estimator)
			}
			fmt.Fprintf(out, "warning: %s: %s\n", scope, t)
		}
	}
	return nil
}

// rowExport is one target's --export-rows file, written to a temporary
// name and renamed into place only when the evaluation succeeds.
type rowExport struct {
	path, tmp string
	f         *os.File
	w         *replay.OBPWriter
	done      bool
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func openExports(path string, targets []replay.Target) ([]*rowExport, error) {
	var out []*rowExport
	ext := filepath.Ext(path)
	for i, t := range targets {
		p := path
		if len(targets) > 1 {
			p = strings.TrimSuffix(path, ext) + "." + unsafeFileChars.ReplaceAllString(t.Name, "_") + ext
		}
		f, err := os.Create(p + ".tmp")
		if err != nil {
			for _, e := range out {
				e.abort()
			}
			return nil, fmt.Errorf("--export-rows: %w", err)
		}
		out = append(out, &rowExport{path: p, tmp: p + ".tmp", f: f, w: replay.NewOBPWriter(f, i)})
	}
	return out, nil
}

func (e *rowExport) commit() error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("--export-rows %s: %w", e.path, err)
	}
	if err := e.f.Close(); err != nil {
		return fmt.Errorf("--export-rows %s: %w", e.path, err)
	}
	if err := os.Rename(e.tmp, e.path); err != nil {
		return fmt.Errorf("--export-rows: %w", err)
	}
	e.done = true
	return nil
}

func (e *rowExport) abort() {
	if e.done {
		return
	}
	e.f.Close()
	os.Remove(e.tmp)
}

// runResimulate runs every target through the simulator on the logs'
// traffic: the logged requests themselves (--traffic logged) or traffic
// fitted to them; the providers come from --scenario or are fitted to the
// logs.
func runResimulate(ctx context.Context, fl replayFlags, ropts offline.ReaderOpts, targets []replay.Target, out, errOut io.Writer) error {
	if fl.requests < 0 {
		return fmt.Errorf("--requests %d: must be >= 0", fl.requests)
	}
	switch fl.traffic {
	case "", "logged":
	case "fitted":
		if fl.clock != "" && fl.clock != "auto" {
			return fmt.Errorf("--clock goes with --traffic logged")
		}
		if fl.tenantSalt != "" || fl.routeForce {
			return fmt.Errorf("--tenant-salt and --route-forced go with --traffic logged")
		}
	default:
		return fmt.Errorf("--traffic %q: want logged or fitted", fl.traffic)
	}
	clock, err := fromlogs.ParseClock(fl.clock)
	if err != nil {
		return fmt.Errorf("--clock: %w", err)
	}
	var providers *sim.Scenario
	if fl.scenario != "" {
		if providers, err = sim.LoadScenario(fl.scenario); err != nil {
			return fmt.Errorf("--scenario: %w", err)
		}
	}
	if fl.traffic == "fitted" {
		return runResimulateFitted(ctx, fl, ropts, providers, targets, out, errOut)
	}

	var sc *sim.Scenario
	var notes []string
	var src *offline.LogSource
	topts := fromlogs.TraceOpts{RouteForced: fl.routeForce}
	if providers == nil {
		src = newLogSource(ropts, fl.skipBad, fl.quiet, errOut, "pass 1/2: fit providers", "pass 2/2: read requests")
		cal, err := fromlogs.Calibrate(ctx, src, fromlogs.CalibrateOpts{Name: "calibrated+logged-traffic", Seed: fl.seed})
		if err != nil {
			return err
		}
		sc, notes = cal.Scenario, cal.Notes
	} else {
		src = newLogSource(ropts, fl.skipBad, fl.quiet, errOut, "reading requests")
		cp := *providers
		cp.Name = providers.Name + "+logged-traffic"
		sc = &cp
		topts.Tenants = fromlogs.HashedTenants(fl.tenantSalt, providers.Tenants())
	}
	tr, err := fromlogs.BuildTrace(ctx, src, topts)
	if err != nil {
		return fmt.Errorf("--logs: %w", err)
	}
	if fl.requests > tr.Len() {
		return fmt.Errorf("--requests %d: the logs hold %d requests", fl.requests, tr.Len())
	}
	run, _, err := tr.Anchor(sc, clock)
	if err != nil {
		if fl.scenario != "" {
			return fmt.Errorf("--scenario %s: %w", fl.scenario, err)
		}
		return fmt.Errorf("resimulate: %w", err)
	}
	enc, err := simEncoder(run)
	if err != nil {
		return fmt.Errorf("resimulate: feature encoder: %w", err)
	}
	results, err := fromlogs.Resimulate(ctx, tr, sc, targets, fromlogs.ResimulateOpts{Seed: fl.seed, Requests: fl.requests, Encoder: enc, Clock: clock})
	if err != nil {
		return err
	}
	// Requests whose tenant the scenario does not list: with --scenario,
	// most likely a wrong --tenant-salt.
	unknownTenants := 0
	if providers != nil && len(providers.Tenants()) > 0 {
		unknownTenants = tr.RequestsOutside(providers.Tenants())
	}
	var tenantNote string
	if unknownTenants > 0 {
		tenantNote = fmt.Sprintf("%d requests have a tenant scenario %s does not list (wrong --tenant-salt?); no tenant modifier applies to them", unknownTenants, providers.Name)
	}
	if err := writeResimResults(out, fl.json, results); err != nil {
		return err
	}
	if fl.json {
		if unknownTenants > 0 {
			fmt.Fprintln(errOut, "warning:", tenantNote)
		}
		return nil
	}
	n := tr.Len()
	if fl.requests > 0 {
		n = fl.requests
	}
	fmt.Fprintf(out, "note: traffic: %d of the %d logged requests, %s to %s, replayed in arrival order; the run's clock starts at %s\n",
		n, tr.Len(), tr.First().Format(time.RFC3339), tr.Last().Format(time.RFC3339), run.StartTime().Format(time.RFC3339Nano))
	if providers != nil {
		fmt.Fprintf(out, "note: providers from scenario %s\n", providers.Name)
		if unknownTenants > 0 {
			fmt.Fprintln(out, "note:", tenantNote)
		}
		return nil
	}
	fmt.Fprintln(out, "note: providers fitted to the logs (as \"routelab calibrate\" fits them)")
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}
	return nil
}

// runResimulateFitted is --traffic fitted: fresh traffic from the logs'
// fitted arrival process (and, without --scenario, fitted providers).
func runResimulateFitted(ctx context.Context, fl replayFlags, ropts offline.ReaderOpts, providers *sim.Scenario, targets []replay.Target, out, errOut io.Writer) error {
	src := newLogSource(ropts, fl.skipBad, fl.quiet, errOut)
	cal, err := fromlogs.Calibrate(ctx, src, fromlogs.CalibrateOpts{Name: "resimulated", Seed: fl.seed})
	if err != nil {
		return err
	}
	sc := cal.Scenario
	if providers != nil {
		fitted := *sc
		fitted.Name = providers.Name + "+fitted-traffic"
		fitted.Providers, fitted.Timeout, fitted.Reward = providers.Providers, providers.Timeout, providers.Reward
		if err := fitted.Validate(); err != nil {
			return fmt.Errorf("--scenario %s with the logs' traffic: %w", fl.scenario, err)
		}
		sc = &fitted
	}
	enc, err := simEncoder(sc)
	if err != nil {
		return fmt.Errorf("resimulate: feature encoder: %w", err)
	}
	results, err := fromlogs.ResimulateFitted(ctx, sc, targets, fromlogs.FittedOpts{Seed: fl.seed, Requests: fl.requests, Encoder: enc})
	if err != nil {
		return err
	}
	if err := writeResimResults(out, fl.json, results); err != nil {
		return err
	}
	if fl.json {
		return nil
	}
	if providers != nil {
		fmt.Fprintf(out, "note: providers from scenario %s; traffic fitted to the logs (%d requests logged, %.3g req/s)\n", providers.Name, cal.Scenario.Requests, sc.Traffic.Rate)
		return nil
	}
	for _, n := range cal.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	return nil
}

// writeResimResults writes one "routelab sim" table per result, or a JSON
// array of them, and a blank line before the notes.
func writeResimResults(out io.Writer, asJSON bool, results []*sim.Result) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(out)
		}
		if err := writeSimTable(out, &simView{Result: r}); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	return nil
}
