package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// loggedFlags are the held-out evaluation's learners from a decision log:
// a logging policy plays the training part (bandit feedback), and
// offline.FitRouter fits routers from what it logged.
type loggedFlags struct {
	learners string
	logger   string
	l2       float64
	clip     float64
}

func addLoggedFlags(f *pflag.FlagSet, fl *loggedFlags) {
	f.StringVar(&fl.learners, "logged", "", "held-out mode: also fit these routers (comma separated: ridge-ips, ridge-dr, ridge-dm) from the decision log of --logging-policy over --bandit-passes shuffled passes of the training part (bandit feedback only, reward as --bandit-lambda), and score them frozen on the test part beside a full-information ridge router on the same features")
	f.StringVar(&fl.logger, "logging-policy", "random", "held-out mode: the policy spec that writes --logged's log (its propensities are logged)")
	f.Float64Var(&fl.l2, "logged-l2", 0.01, "held-out mode: ridge penalty of the --logged routers (fixed, not tuned)")
	f.Float64Var(&fl.clip, "logged-clip", 0, "held-out mode: cap on 1/propensity of the --logged routers (0 = none)")
}

// runLogged logs --logging-policy's play over train, fits the --logged
// routers from the log, and scores them, the logger and a
// full-information ridge router (all on enc's features, reward rw) frozen
// on test.
func runLogged(ctx context.Context, fl loggedFlags, ho heldoutFlags, reg *policy.Registry, train, test *datasets.Table, bts policy.TextSpec, rw decision.Reward, seed uint64) ([]banditRun, error) {
	var names []string
	for _, l := range strings.Split(fl.learners, ",") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if _, ok := offline.RouterLearners[l]; !ok {
			return nil, fmt.Errorf("--logged %q: want %s", l, strings.Join(slices.Sorted(maps.Keys(offline.RouterLearners)), ", "))
		}
		names = append(names, l)
	}
	if len(names) == 0 {
		return nil, nil
	}
	if !(fl.l2 > 0) || math.IsInf(fl.l2, 1) {
		return nil, fmt.Errorf("--logged-l2 %v: must be a finite number > 0", fl.l2)
	}
	if !(fl.clip >= 0) || math.IsInf(fl.clip, 1) {
		return nil, fmt.Errorf("--logged-clip %v: must be a finite number >= 0", fl.clip)
	}
	spec, err := train.TextEncoderSpec(bts)
	if err != nil {
		return nil, err
	}
	enc, err := policy.NewEncoder(spec)
	if err != nil {
		return nil, err
	}
	ls, err := policy.ParseSpec(fl.logger)
	if err != nil {
		return nil, fmt.Errorf("--logging-policy: %w", err)
	}
	ls = cloneSpec(ls)
	if _, ok := ls.Params["seed"]; !ok {
		ls.Params["seed"] = strconv.FormatUint(sim.PolicySeed(seed), 10)
	}
	logger, err := reg.New(ls)
	if err != nil {
		return nil, fmt.Errorf("--logging-policy %s: %w", fl.logger, err)
	}
	var log replay.Records
	tr, err := datasets.Evaluate(ctx, train, logger, datasets.Opts{Seed: seed, Passes: ho.banditPasses, Shuffle: true, Encoder: enc, Reward: rw,
		Log: func(rec *decision.Record) error { log = append(log, rec.Clone()); return nil }})
	if err != nil {
		return nil, fmt.Errorf("--logging-policy %s: %w", fl.logger, err)
	}
	score := func(name string, p policy.Policy, trainMean float64) (banditRun, error) {
		te, err := datasets.Evaluate(ctx, test, p, datasets.Opts{Seed: seed, Frozen: true, Encoder: enc, Reward: rw})
		if err != nil {
			return banditRun{}, fmt.Errorf("%s: %w", name, err)
		}
		br := banditRun{Policy: name, TrainMean: trainMean, TestReward: te.MeanReward, TestScore: te.MeanScore,
			TestCost: te.CostTotal / float64(te.Decisions), BestFixed: te.BestFixed}
		for _, f := range te.Fixed {
			br.Fixed = append(br.Fixed, f.MeanReward)
		}
		return br, nil
	}
	var out []banditRun
	br, err := score("logger "+fl.logger, logger, tr.MeanReward)
	if err != nil {
		return nil, err
	}
	out = append(out, br)
	for _, name := range names {
		p, _, err := offline.FitRouter(ctx, log, offline.RouterOpts{Weighting: offline.RouterLearners[name], L2: fl.l2, Clip: fl.clip, Catalogue: train.Models})
		if err != nil {
			return nil, fmt.Errorf("--logged %s: %w", name, err)
		}
		// Its training stream is the log: TrainMean is the log's mean reward.
		if br, err = score(name, p, tr.MeanReward); err != nil {
			return nil, err
		}
		out = append(out, br)
	}
	full, _, err := datasets.FitRouter(train, bts, "ridge", policy.LinearRouterOpts{Lambda: ho.banditLambda}, seed)
	if err != nil {
		return nil, fmt.Errorf("full-information ridge: %w", err)
	}
	if br, err = score("ridge (full information)", full, 0); err != nil {
		return nil, err
	}
	return append(out, br), nil
}

// summariseLogged aggregates the runs' Logged over seeds.
func summariseLogged(sum *heldoutSummary) {
	sum.Logged = summariseBandits(sum.Runs, func(r heldoutRun) []banditRun { return r.Logged })
}

// writeLoggedText writes the --logged table.
func writeLoggedText(out io.Writer, sum *heldoutSummary) error {
	if len(sum.Logged) == 0 {
		return nil
	}
	fmt.Fprintf(out, "\nrouters fitted from a decision log (bandit feedback only: the logger's choices, their propensities and rewards quality − %g·cost over %d shuffled passes of the training part), scored frozen on the test part; the full-information ridge router on the same features is the ceiling:\n\n", sum.Lambda, sum.Passes)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "router\ttest reward\tbest fixed\tmargin\tseeds beating every fixed\tmean score\tmean cost\t")
	for _, b := range sum.Logged {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t$%s\t\n", b.Policy, ci(b.Reward, 1, 4), ci(b.BestFixed, 1, 4), ci(b.Margin, 1, 4),
			b.Beats, len(sum.Runs), ci(b.Score, 1, 4), ci(b.Cost, 1, 6))
	}
	return w.Flush()
}
