package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/policy/neural"
)

// neuralFitFlags are the inputs of `routelab neural fit`.
type neuralFitFlags struct {
	logs      []string
	policy    string
	init      string
	out       string
	weighting string
	clip      float64
	epochs    float64
	from, to  string
	feedback  bool
	skipBad   bool
	quiet     bool
	scenario  string
	config    string
}

func newNeuralCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "neural",
		Short: "Neural contextual policies: fit neural-linear offline from decision logs",
		Args:  cobra.NoArgs,
	}
	var fl neuralFitFlags
	fit := &cobra.Command{
		Use:   "fit",
		Short: "Train a neural-linear policy's reward network from decision logs and write its snapshot",
		Long: `Train a neural-linear policy offline from decision logs and write its snapshot.

The reward network (gorgonia) is fitted to the logged rewards corrected for
the logging policy: --weighting ips weights each row by min(1/propensity,
--clip); dr refits on doubly robust pseudo-rewards for every candidate; none
takes every row once. Each arm's Bayesian linear regression is then built on
the network's last layer from the logged rows, which also fill the replay
buffer; the snapshot restores a policy that serves and keeps learning online.
Evaluate it with "routelab replay --policy-file FILE".

Logs need feature vectors (routelab sim --log and the gateway write them when
an encoder is configured).`,
		Example: `  routelab neural fit --logs data/decisions --policy "neural-linear=explore:thompson;hidden:64x32" --out nl.json
  routelab replay --logs data/decisions --policy-file nl.json --estimators snips,dr`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNeuralFit(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := fit.Flags()
	addLogFlags(f, &fl.logs, &fl.from, &fl.to, &fl.feedback, &fl.skipBad, "join delayed feedback found under --logs into the rewards")
	f.StringVar(&fl.policy, "policy", "", "neural-linear spec: neural-linear=key:value;key:value")
	f.StringVar(&fl.init, "init", "", "start from this neural-linear snapshot instead of a fresh --policy")
	f.StringVar(&fl.out, "out", "", "write the fitted policy as a policy artifact to this file")
	f.StringVar(&fl.scenario, "scenario", "", "the logs came from this sim scenario: record its encoder, reward and arms")
	f.StringVar(&fl.config, "config", "", "the logs came from a gateway with this config: record its encoder, reward and models")
	f.StringVar(&fl.weighting, "weighting", "ips", "correction for the logging policy: ips, dr or none")
	f.Float64Var(&fl.clip, "clip", 10, "cap on 1/propensity (>= 1)")
	f.Float64Var(&fl.epochs, "epochs", 10, "passes over the rows per training stage")
	f.BoolVar(&fl.quiet, "quiet", false, "no progress bar")
	cmd.AddCommand(fit)
	return cmd
}

func runNeuralFit(ctx context.Context, fl neuralFitFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkLogPaths(fl.logs); err != nil {
		return err
	}
	if fl.out == "" {
		return fmt.Errorf("--out: no snapshot file given")
	}
	if (fl.policy == "") == (fl.init == "") {
		return fmt.Errorf("--policy or --init: give exactly one")
	}
	w, err := neural.ParseWeighting(fl.weighting)
	if err != nil {
		return fmt.Errorf("--weighting: %w", err)
	}
	if !(fl.clip >= 1) || fl.clip > 1e12 {
		return fmt.Errorf("--clip %v: must be a number in [1, 1e12]", fl.clip)
	}
	if !(fl.epochs > 0) || fl.epochs > 1e6 {
		return fmt.Errorf("--epochs %v: must be a number in (0, 1e6]", fl.epochs)
	}
	ropts, cleanup, err := logReaderOpts(ctx, fl.logs, fl.from, fl.to, fl.feedback, errOut)
	if err != nil {
		return err
	}
	defer cleanup()
	reg := newRegistry()
	var p policy.Policy
	flag := "--policy"
	if fl.init != "" {
		flag = "--init"
		if p, err = loadInit(reg, fl.init); err != nil {
			return err
		}
	} else if p, err = reg.NewFromString(fl.policy); err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	inner := p
	if fw, ok := p.(*policy.Floor); ok {
		inner = fw.Inner()
	}
	nl, ok := inner.(*neural.NeuralLinear)
	if !ok {
		return fmt.Errorf("%s: %s is not %s; use routelab train for other policies", flag, p.Name(), neural.Name)
	}
	src := &logStats{src: newLogSource(ropts, fl.skipBad, fl.quiet, errOut, "reading logs")}
	st, err := offline.FitNeural(ctx, nl, src, neural.FitOpts{Weighting: w, Clip: fl.clip, Epochs: fl.epochs})
	if err != nil {
		return err
	}
	tc, err := trainingContextFor(fl.scenario, fl.config, src)
	if err != nil {
		return err
	}
	if err := writeTrained(fl.out, "neural fit", p, tc, src, fl.logs, 0); err != nil {
		return err
	}
	steps := st.IPS.Steps
	if w == neural.DR {
		steps += st.Final.Steps
	}
	_, err = fmt.Fprintf(out, "fitted %s on %d rows, %d arms (%s: max 1/propensity %.3g, %d clipped, ESS %.0f); loss %.4f -> %.4f in %d steps -> %s\n",
		p.Name(), st.Rows, len(st.Arms), w, st.MaxWeight, st.Clipped, st.ESS, st.Final.LossBefore, st.Final.LossAfter, steps, fl.out)
	return err
}
