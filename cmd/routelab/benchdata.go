package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/spf13/cobra"
)

// benchdataFlags are the inputs of `routelab benchdata`.
type benchdataFlags struct {
	data     string
	path     string
	policies string
	seed     uint64
	passes   int
	noShuf   bool
	prices   map[string]string
	json     bool
	// strict: a missing score is an error (held-out mode).
	strict bool
	// cascades are --cascade's specs: "auto" or AGREE+AGREE>ESCALATE.
	cascades []string
	ho       heldoutFlags
}

func newBenchdataCmd() *cobra.Command {
	var fl benchdataFlags
	cmd := &cobra.Command{
		Use:   "benchdata",
		Short: "Evaluate policies on real benchmark outcome tables (RouterBench, RouteLLM MMLU)",
		Long: `Replay a real LLM-routing benchmark through one or more policies with full
information: on every prompt the policy chooses one of the benchmark's models
and is paid the reward of that model's recorded score and cost, while the
oracle (the best model per prompt) and every "always model X" baseline are
computed on the same prompts.

--data routerbench reads the RouterBench zero-shot split (11 models, scores
and per-prompt costs); --data routellm reads RouteLLM's MMLU responses (2
models, correctness only: costs are 0 unless --price sets prices, MODEL=USD
per 1,000 prompt tokens or MODEL=USD/request per call). Neither records latency, so every model gets the
same 1 s and the latency term does not discriminate. The reward is
decision.DefaultReward with cost_ref $0.001 per prompt.

Policies are specs as in "routelab policies", comma separated; a spec
without a seed gets one derived from --seed. Contextual policies see an
intercept, the task (eval_name or MMLU subject) and the prompt-size bucket.

Held-out mode (--split SHARE, or --train PATH --test PATH): fit
full-information learners (--learners) on prompt-text features (IDF fitted
on the training part, hyper-parameters chosen on a validation part of it),
sweep the willingness to pay λ (route each test prompt to argmax predicted
score − λ·predicted cost) and report the cost–quality curve with every
fixed model and their hull, AIQ, APGR, CPT at 50/80/90/95% of the strongest
model, the strong-call share at 50% PGR, mean ± 95% CI over --seeds.
--bandit SPECS also learns policies from bandit feedback only (reward
quality − --bandit-lambda·cost) over --bandit-passes shuffled passes of
the training part and scores them frozen on the test part. See
docs/text-routing.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchdata(cmd.Context(), fl, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.data, "data", "routerbench", "benchmark: routerbench or routellm")
	f.StringVar(&fl.path, "path", "", "`PATH` of the data: a CSV file or a directory of them (default $ROUTELAB_DATA/routerbench or $ROUTELAB_DATA/routellm/mmlu, with ROUTELAB_DATA defaulting to ../shared/data)")
	f.StringVar(&fl.policies, "policy", "random,thompson", "policy specs, comma separated: NAME or NAME=key:value;key:value")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of the row order (and of the policies unless their spec sets one)")
	f.IntVar(&fl.passes, "passes", 1, "replay the table this many times (the policy keeps learning)")
	f.BoolVar(&fl.noShuf, "no-shuffle", false, "replay rows in file order (grouped by task) instead of a seeded random order")
	f.StringToStringVar(&fl.prices, "price", nil, "price of a model: MODEL=USD per 1,000 prompt tokens, or MODEL=USD/request per call (for routellm, which has no costs); repeatable")
	f.BoolVar(&fl.json, "json", false, "print one JSON object instead of a table")
	f.StringArrayVar(&fl.cascades, "cascade", nil, "add an agreement cascade as one more model: `A+B>C` asks A and B and serves A's answer when they agree (same decision.AnswerKey), else asks C; cost is what was asked. \"auto\" picks it from the (training) data: the two best models costing at most a tenth of the strongest agree, the strongest is escalated to. Needs the tables' response columns (routerbench); repeatable")
	addHeldoutFlags(f, &fl.ho)
	return cmd
}

// benchdataOutput is the --json output.
type benchdataOutput struct {
	Table   string             `json:"table"`
	Sources []string           `json:"sources"`
	Skipped int                `json:"skipped_rows"`
	Results []*datasets.Result `json:"results"`
}

func runBenchdata(ctx context.Context, fl benchdataFlags, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if fl.ho.active() {
		return runHeldout(ctx, fl, newRegistry(), out)
	}
	if fl.passes < 1 {
		return fmt.Errorf("--passes %d: must be >= 1", fl.passes)
	}
	specs, err := policy.ParseSpecs(fl.policies)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	if len(specs) == 0 {
		return errors.New("--policy: no policy spec")
	}
	tb, err := loadBenchdata(fl)
	if err != nil {
		return err
	}
	if err := applyPrices(tb, fl.prices); err != nil {
		return err
	}
	if err := addCascades(fl.cascades, tb); err != nil {
		return err
	}
	enc, err := policy.NewEncoder(tb.EncoderSpec())
	if err != nil {
		return fmt.Errorf("feature encoder: %w", err)
	}
	reg := newRegistry()
	res := benchdataOutput{Table: tb.Name, Sources: tb.Sources, Skipped: tb.Skipped}
	for _, spec := range specs {
		if _, ok := spec.Params["seed"]; !ok {
			spec.Params["seed"] = strconv.FormatUint(sim.PolicySeed(fl.seed), 10)
		}
		p, err := reg.New(spec)
		if err != nil {
			return fmt.Errorf("--policy %s: %w", spec, err)
		}
		r, err := datasets.Evaluate(ctx, tb, p, datasets.Opts{Seed: fl.seed, Passes: fl.passes, Shuffle: !fl.noShuf, Encoder: enc})
		if err != nil {
			return fmt.Errorf("policy %s: %w", spec, err)
		}
		res.Results = append(res.Results, r)
	}
	if fl.json {
		return json.NewEncoder(out).Encode(res)
	}
	return writeBenchdataTable(out, &res)
}

// benchSources says where each benchmark's outcome tables come from, for
// the error a user sees when they are not where routelab looks.
var benchSources = map[string]string{
	"routerbench": "RouterBench's zero-shot split as redistributed by the RouterDC repository (shuhao02/RouterDC, datasets/routerbench_zs: arc_challenge_train.csv, mbpp_train.csv, winograde_train.csv)",
	"routellm":    "RouteLLM's MMLU responses (lm-sys/RouteLLM, routellm/evals/mmlu/responses: one CSV per subject)",
}

// loadBenchdata loads --data from --path, $ROUTELAB_DATA/<data> or the
// default beside the repository (../shared/data, present in routelab's CI
// but not in a clone), with an error saying where it looked and where the
// data comes from.
func loadBenchdata(fl benchdataFlags) (*datasets.Table, error) {
	var sub string
	switch fl.data {
	case "routerbench":
		sub = "routerbench"
	case "routellm":
		sub = filepath.Join("routellm", "mmlu")
	default:
		return nil, fmt.Errorf("--data %q: want routerbench or routellm", fl.data)
	}
	path := fl.path
	if path == "" {
		root, from := filepath.Join("..", "shared", "data"), "the default"
		if env := os.Getenv("ROUTELAB_DATA"); env != "" {
			root, from = env, "$ROUTELAB_DATA"
		}
		path = filepath.Join(root, sub)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("--data %s: no --path given and %s %s does not exist. "+
				"The data is not part of the repository: download %s, then pass --path DIR "+
				"or set ROUTELAB_DATA to a directory holding %s", fl.data, from, path, benchSources[fl.data], sub)
		}
	}
	var (
		tb  *datasets.Table
		err error
	)
	if fl.data == "routerbench" {
		tb, err = datasets.LoadRouterBenchOpts(datasets.LoadOpts{RejectMissing: fl.strict}, path)
	} else {
		tb, err = datasets.LoadRouteLLM(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--data %s --path %s: %w", fl.data, path, err)
	}
	if len(tb.Rows) == 0 {
		return nil, fmt.Errorf("--data %s --path %s: no complete rows", fl.data, path)
	}
	return tb, nil
}

// writeBenchdataTable prints the policies side by side, then every fixed
// model's baseline.
func writeBenchdataTable(out io.Writer, o *benchdataOutput) error {
	rs := o.Results
	first := rs[0]
	fmt.Fprintf(out, "table %s: %d rows (%d skipped: a model's score missing), %d models, seed %d, %d pass(es)\n\n",
		o.Table, first.Rows, o.Skipped, len(first.Fixed), first.Seed, first.Passes)
	var best datasets.Fixed
	for _, f := range first.Fixed {
		if f.Model == first.BestFixed {
			best = f
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(label string, cell func(*datasets.Result) string, fixed string) {
		fmt.Fprintf(w, "%s\t", label)
		for _, r := range rs {
			fmt.Fprintf(w, "%s\t", cell(r))
		}
		fmt.Fprintf(w, "%s\t\n", fixed)
	}
	row("", func(r *datasets.Result) string { return r.Policy }, "best fixed")
	row("mean reward", func(r *datasets.Result) string { return fmt.Sprintf("%.4f", r.MeanReward) }, fmt.Sprintf("%.4f", best.MeanReward))
	row("% of oracle", func(r *datasets.Result) string { return fmt.Sprintf("%.1f%%", 100*r.MeanReward/r.OracleMeanReward) },
		fmt.Sprintf("%.1f%%", 100*best.MeanReward/first.OracleMeanReward))
	row("regret", func(r *datasets.Result) string { return fmt.Sprintf("%.1f", r.Regret) },
		fmt.Sprintf("%.1f", float64(first.Decisions)*(first.OracleMeanReward-best.MeanReward)))
	row("mean score", func(r *datasets.Result) string { return fmt.Sprintf("%.4f", r.MeanScore) }, fmt.Sprintf("%.4f", best.MeanScore))
	row("cost total", func(r *datasets.Result) string { return fmt.Sprintf("$%.4f", r.CostTotal) }, fmt.Sprintf("$%.4f", best.CostTotal))
	for m := range first.Shares {
		row("share "+first.Shares[m].Model, func(r *datasets.Result) string { return fmt.Sprintf("%.3f", r.Shares[m].Share) }, "")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nbest fixed model: %s; oracle mean reward %.4f\n\n", first.BestFixed, first.OracleMeanReward)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "always model\tmean reward\tmean score\tcost total\t")
	for _, f := range first.Fixed {
		fmt.Fprintf(w, "%s\t%.4f\t%.4f\t$%.4f\t\n", f.Model, f.MeanReward, f.MeanScore, f.CostTotal)
	}
	return w.Flush()
}

// applyPrices sets the --price prices on tb: MODEL=USD is USD per 1,000
// prompt tokens, MODEL=USD/request a flat USD per request.
func applyPrices(tb *datasets.Table, prices map[string]string) error {
	if len(prices) == 0 {
		return nil
	}
	perK, perReq := map[string]float64{}, map[string]float64{}
	for m, s := range prices {
		dst, num := perK, s
		if v, ok := strings.CutSuffix(s, "/request"); ok {
			dst, num = perReq, v
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || m == "" {
			return fmt.Errorf("--price %s=%s: want MODEL=USD (per 1,000 prompt tokens) or MODEL=USD/request", m, s)
		}
		if !slices.Contains(tb.Models, m) { // checked up front: a bad --price changes no cost
			return fmt.Errorf("--price %s=%s: model %q: not a model of table %s (models %v)", m, s, m, tb.Name, tb.Models)
		}
		if !(v >= 0) || v > 1e9 {
			return fmt.Errorf("--price %s=%s: must be a finite number >= 0", m, s)
		}
		dst[m] = v
	}
	if err := tb.WithPromptPrices(perK); err != nil {
		return fmt.Errorf("--price: %w", err)
	}
	if err := tb.WithRequestPrices(perReq); err != nil {
		return fmt.Errorf("--price: %w", err)
	}
	return nil
}

// addCascades adds --cascade's cascades to every table, "auto" chosen on
// the first (the training table in held-out mode), so all tables keep the
// same models.
func addCascades(specs []string, tables ...*datasets.Table) error {
	var cs []datasets.Cascade
	for _, s := range specs {
		var c datasets.Cascade
		var err error
		if strings.TrimSpace(s) == "auto" {
			c, err = datasets.AutoCascade(tables[0])
		} else {
			c, err = datasets.ParseCascade(s)
		}
		if err != nil {
			return fmt.Errorf("--cascade %q: %w", s, err)
		}
		cs = append(cs, c)
	}
	for _, t := range tables {
		if err := t.AddCascades(cs); err != nil {
			return fmt.Errorf("--cascade: %w", err)
		}
	}
	return nil
}
