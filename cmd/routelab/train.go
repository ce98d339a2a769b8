package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
)

// trainFlags are the inputs of `routelab train`.
type trainFlags struct {
	logs       []string
	policy     string
	init       string
	out        string
	unweighted bool
	clip       float64
	seed       uint64
	from, to   string
	feedback   bool
	skipBad    bool
	quiet      bool
	scenario   string
	config     string
	learner    string
	l2         float64
}

func newTrainCmd() *cobra.Command {
	var fl trainFlags
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Warm-start a learning policy from decision logs and write its snapshot",
		Long: `Warm-start a learning policy from decision logs and write its snapshot
(the versioned JSON that policies restore from).

Every logged reward is fed to the policy's Update, importance-weighted by
the inverse of the logged propensity (normalised per arm so that each arm
keeps its row count): bandit statistics become population means, and the
per-arm ridge regressions of linear policies become weighted least squares.
Weights are realised as a seeded number of Update calls per row. With
--unweighted every row counts once, as if the policy had made the logged
choices itself.

The policy is a spec as in "routelab policies", or --init continues from a
snapshot. Contextual policies learn from the feature vectors as logged.
The output is a policy artifact: the learned state with the encoder,
reward and arms it was trained with and its provenance; --scenario or
--config say which encoder and reward the logs were written with. Serve it
with "routelab sim --policy-file FILE" or the gateway's policy: {file: FILE};
evaluate it with "routelab replay --policy-file FILE".

With --learner (instead of --policy/--init) it fits a frozen linear router
(policy linear-router) from the logs: per arm, a ridge regression of the
logged reward on the logged feature vector (and one of the cost), with
ridge-ips weighting each row by its inverse propensity (--clip caps it),
ridge-dr using doubly robust pseudo-rewards around the unweighted fit, and
ridge-dm the unweighted fit (the direct method). The router picks the arm
with the highest predicted reward. With --scenario or --config, a logged
arm outside their catalogue is an error.`,
		Example: `  routelab train --logs data/decisions --policy linucb=alpha:0.5 --out linucb.json
  routelab replay --logs data/decisions --policy-file linucb.json --estimators snips,dr
  routelab train --logs data/decisions --config gateway.yaml --learner ridge-dr --out router.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addLogFlags(f, &fl.logs, &fl.from, &fl.to, &fl.feedback, &fl.skipBad, "join delayed feedback found under --logs into the rewards")
	f.StringVar(&fl.policy, "policy", "", "policy spec to train: NAME or NAME=key:value;key:value")
	f.StringVar(&fl.init, "init", "", "start from this policy snapshot instead of a fresh --policy")
	f.StringVar(&fl.out, "out", "", "write the trained policy as a policy artifact (see \"routelab policies show\") to this file")
	f.StringVar(&fl.scenario, "scenario", "", "the logs came from this sim scenario: record its encoder, reward and arms (default: the default encoder over the logged tasks, the default reward)")
	f.StringVar(&fl.config, "config", "", "the logs came from a gateway with this config: record its encoder, reward and models")
	f.BoolVar(&fl.unweighted, "unweighted", false, "feed every row once instead of importance-weighting")
	f.Float64Var(&fl.clip, "clip", 0, "cap on a row's normalised weight (0 = no cap)")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of the stochastic rounding of weights")
	f.BoolVar(&fl.quiet, "quiet", false, "no progress bar")
	f.StringVar(&fl.learner, "learner", "", "fit a linear router instead of a --policy: ridge-ips, ridge-dr or ridge-dm")
	f.Float64Var(&fl.l2, "l2", 0.01, "ridge penalty of --learner")
	return cmd
}

func runTrain(ctx context.Context, fl trainFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkLogPaths(fl.logs); err != nil {
		return err
	}
	if fl.out == "" {
		return fmt.Errorf("--out: no snapshot file given")
	}
	if fl.learner != "" {
		return runTrainRouter(ctx, fl, out, errOut)
	}
	if (fl.policy == "") == (fl.init == "") {
		return fmt.Errorf("--policy or --init: give exactly one")
	}
	if fl.clip < 0 || math.IsNaN(fl.clip) || math.IsInf(fl.clip, 0) {
		return fmt.Errorf("--clip %v: must be a finite number >= 0", fl.clip)
	}
	ropts, cleanup, err := logReaderOpts(ctx, fl.logs, fl.from, fl.to, fl.feedback, errOut)
	if err != nil {
		return err
	}
	defer cleanup()
	reg := newRegistry()
	var p policy.Policy
	if fl.init != "" {
		if p, err = loadInit(reg, fl.init); err != nil {
			return err
		}
	} else if p, err = reg.NewFromString(fl.policy); err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	if _, ok := p.(policy.Snapshotter); !ok {
		return fmt.Errorf("--policy: %s cannot write snapshots, so there is nothing to train", p.Name())
	}
	var desc []string
	if !fl.unweighted {
		desc = []string{"pass 1/2: weights", "pass 2/2: train"}
	}
	src := &logStats{src: newLogSource(ropts, fl.skipBad, fl.quiet, errOut, desc...)}
	st, err := offline.Train(ctx, src, p, offline.TrainOpts{Unweighted: fl.unweighted, Clip: fl.clip, Seed: fl.seed})
	if err != nil {
		return err
	}
	tc, err := trainingContextFor(fl.scenario, fl.config, src)
	if err != nil {
		return err
	}
	if err := writeTrained(fl.out, "train", p, tc, src, fl.logs, fl.seed); err != nil {
		return err
	}
	mode := "importance-weighted"
	if fl.unweighted {
		mode = "unweighted"
	}
	_, err = fmt.Fprintf(out, "trained %s on %d rows (%s: %d updates, %d arms, max weight %.3g) -> %s\n",
		p.Name(), st.Rows, mode, st.Updates, st.Arms, st.MaxWeight, fl.out)
	return err
}
