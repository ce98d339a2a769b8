package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/internal/atomicfile"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/spf13/pflag"
)

// heldoutFlags are the held-out evaluation flags of `routelab benchdata`.
type heldoutFlags struct {
	train, test   string
	split         float64
	seeds         int
	learners      string
	textBuckets   int
	textWords     int
	textChars     string
	noMarkers     bool
	exportChoices string
	out           string
	bandit        string
	banditLambda  float64
	banditBuckets int
	banditPasses  int
	skipMissing   bool
	savePolicy    string
	saveLearner   string
	saveLambda    float64
	saveBudget    string
	budgetShare   float64
	budgetTarget  float64
	budgetEta     float64
	logged        loggedFlags
}

func addHeldoutFlags(f *pflag.FlagSet, fl *heldoutFlags) {
	f.StringVar(&fl.train, "train", "", "held-out mode: fit on this `PATH` (a RouterBench CSV or a directory of them) and evaluate on --test")
	f.StringVar(&fl.test, "test", "", "held-out mode: evaluate on this `PATH` (its models must be --train's)")
	f.Float64Var(&fl.split, "split", 0, "held-out mode: split the data (--path) stratified by task, this `SHARE` to training, the rest to test, seeded by --seed (one split per seed with --seeds)")
	f.IntVar(&fl.seeds, "seeds", 1, "held-out mode: repeat with seeds --seed..--seed+N-1 (a new split per seed with --split) and report mean ± 95% CI")
	f.StringVar(&fl.learners, "learners", strings.Join(datasets.Learners, ","), "held-out mode: full-information learners, comma separated")
	f.IntVar(&fl.textBuckets, "text-buckets", 2048, "held-out mode: hashed n-gram slots of the text features (0 = none)")
	f.IntVar(&fl.textWords, "text-words", 2, "held-out mode: longest word n-gram")
	f.StringVar(&fl.textChars, "text-chars", "3-4", "held-out mode: character n-gram lengths MIN-MAX (\"\" = none)")
	f.BoolVar(&fl.noMarkers, "no-text-markers", false, "held-out mode: leave out the length/digit/code/math markers")
	f.StringVar(&fl.exportChoices, "export-choices", "", "held-out mode: write `FILE.csv` with sample_id,eval_name,lambda,model for every test prompt and λ (best learner by AIQ, first seed)")
	f.StringVar(&fl.out, "out", "", "held-out mode: write report.md, report.html (SVG cost–quality curve) and heldout.json to `DIR`")
	f.StringVar(&fl.bandit, "bandit", "", "held-out mode: also learn these policy specs (comma separated) online from bandit feedback only, over --bandit-passes shuffled passes of the training part, then score them frozen on the test part")
	f.Float64Var(&fl.banditLambda, "bandit-lambda", 20, "held-out mode: the bandits' reward is quality − `λ`·cost (reward: {quality: 1, cost: 0, latency: 0, lambda: λ})")
	f.IntVar(&fl.banditBuckets, "bandit-buckets", 32, "held-out mode: hashed n-gram slots of the bandits' text features (small: LinUCB keeps a d×d matrix per arm)")
	f.IntVar(&fl.banditPasses, "bandit-passes", 3, "held-out mode: shuffled passes of the training part the bandits learn from")
	f.StringVar(&fl.savePolicy, "save-policy", "", "held-out mode: also fit --save-learner on the first seed's training part and write it as a policy artifact (policy linear-router, its encoder with the fitted IDF, reward quality − --save-lambda·cost) to `FILE`, for the gateway's policy: {file: FILE}")
	f.StringVar(&fl.saveLearner, "save-learner", "ridge", "held-out mode: the learner --save-policy exports: ridge or logistic")
	f.Float64Var(&fl.saveLambda, "save-lambda", 20, "held-out mode: the willingness to pay `λ` of the --save-policy router")
	f.StringVar(&fl.saveBudget, "save-budget", "", "held-out mode: the spend `BUDGET` the --save-policy router enforces per tenant with a dual price on observed spend: USD per request, or per_request=USD,window=1h,limit=USD,eta=E (\"\" = none)")
	f.Float64Var(&fl.budgetShare, "budget-share", datasets.BudgetShare, "held-out mode: every learner's budget router streams the test part under a spend limit of this `SHARE` of the strongest model's mean cost per prompt on the training part, enforced by a dual price on observed spend (<= 0: none)")
	f.Float64Var(&fl.budgetTarget, "budget-target", 0, "held-out mode: instead of --budget-share, calibrate each learner's budget-router limit on the validation part of the training part (no test row) so that its spend there stays within this `SHARE` of the strongest model's mean cost (0 = off)")
	f.Float64Var(&fl.budgetEta, "budget-eta", 0, "held-out mode: the budget routers' dual step (0 = policy.DefaultBudgetEta)")
	addLoggedFlags(f, &fl.logged)
	f.BoolVar(&fl.skipMissing, "skip-missing", false, "held-out mode: skip rows with a missing score (counted) instead of failing")
}

func (fl *heldoutFlags) active() bool { return fl.train != "" || fl.test != "" || fl.split != 0 }

// textSpec is the text block the flags describe.
func (fl *heldoutFlags) textSpec(buckets int) (policy.TextSpec, error) {
	ts := policy.TextSpec{Buckets: buckets, WordNgrams: fl.textWords, Markers: !fl.noMarkers}
	if fl.textChars != "" {
		lo, hi, ok := strings.Cut(fl.textChars, "-")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			return ts, fmt.Errorf("--text-chars %q: want MIN-MAX like 3-4", fl.textChars)
		}
		ts.CharMin, ts.CharMax = a, b
	}
	if buckets == 0 {
		ts.WordNgrams, ts.CharMin, ts.CharMax = 0, 0, 0
	}
	if _, err := policy.NewEncoder(policy.EncoderSpec{Text: &ts}); err != nil {
		return ts, fmt.Errorf("text features: %w", err)
	}
	return ts, nil
}

// heldoutRun is one seed's evaluation.
type heldoutRun struct {
	Seed    uint64                      `json:"seed"`
	Result  *datasets.HeldOutResult     `json:"result"`
	Metrics map[string]datasets.Metrics `json:"-"`
	Bandits []banditRun                 `json:"bandits,omitempty"`
	Logged  []banditRun                 `json:"logged,omitempty"`
}

// banditRun is one bandit policy learnt online from bandit feedback on the
// training part and scored frozen on the test part.
type banditRun struct {
	Policy     string    `json:"policy"`
	TrainMean  float64   `json:"train_mean_reward"`
	TestReward float64   `json:"test_mean_reward"`
	TestScore  float64   `json:"test_mean_score"`
	TestCost   float64   `json:"test_mean_cost"`
	Fixed      []float64 `json:"fixed_test_rewards"`
	BestFixed  string    `json:"best_fixed"`
	// Curve is the online learning curve over the training stream.
	Curve []datasets.CurvePoint `json:"learning_curve"`
}

// heldoutSummary aggregates the runs over seeds.
type heldoutSummary struct {
	Table  string   `json:"table"`
	Models []string `json:"models"`
	Strong string   `json:"strongest_model"`
	Ref    string   `json:"reference_model"`
	Seeds  []uint64 `json:"seeds"`
	// Cascades are the cascades (--cascade) each seed's table carried, by
	// seed: "auto" may choose differently on each seed's training part.
	Cascades [][]string       `json:"cascades_per_seed,omitempty"`
	Runs     []heldoutRun     `json:"runs"`
	Learners []learnerSummary `json:"learners"`
	Fixed    []fixedSummary   `json:"fixed"`
	Hull     ival             `json:"fixed_hull_aiq"`
	// BudgetLimit is the budget routers' limit as a share of the
	// strongest test model's mean cost (fitted on the training part).
	BudgetLimit ival `json:"budget_router_limit_share,omitzero"`
	// BudgetShare is --budget-share: the limit as a share of the
	// strongest model's mean cost on the training part.
	BudgetShare float64 `json:"budget_router_share,omitempty"`
	// BudgetTarget is --budget-target: each learner's limit calibrated on
	// the training part's validation rows to spend at most this share.
	BudgetTarget float64         `json:"budget_router_target,omitempty"`
	BudgetEta    float64         `json:"budget_router_eta,omitempty"`
	Bandits      []banditSummary `json:"bandits,omitempty"`
	Logged       []banditSummary `json:"logged,omitempty"`
	Lambda       float64         `json:"bandit_lambda"`
	Passes       int             `json:"bandit_passes"`

	// HullAPGR and HullStrong50 are the hull's APGR and strong-call share
	// at 50% PGR: with two models, RouteLLM's random router (0.5, 50%).
	HullAPGR     ival `json:"fixed_hull_apgr"`
	HullStrong50 ival `json:"fixed_hull_strong_call_share_at_50pct_pgr"`
}

type learnerSummary struct {
	Learner  string `json:"learner"`
	AIQ      ival   `json:"aiq"`
	APGR     ival   `json:"apgr"`
	CPT      []ival `json:"cpt"`
	AtBudget ival   `json:"quality_share_at_25pct_cost"`
	AtRef    ival   `json:"gain_at_reference_cost"`
	// Strong50 is the share of test prompts sent to the strongest model
	// at the cheapest λ recovering 50% of the performance gap (RouteLLM).
	Strong50 ival             `json:"strong_call_share_at_50pct_pgr"`
	Curve    []datasets.Point `json:"mean_curve"`
	// AtBudgetHull is the frontier at 25% of the strongest model's cost:
	// randomising between the two λ points around it.
	AtBudgetHull ival `json:"quality_share_at_25pct_cost_hull"`
	// Budget* is the budget router (datasets.BudgetRun): its realised
	// quality and cost as shares of the strongest test model's, its
	// realised cost over its limit (cost/limit − 1, per seed, and the
	// largest), and its quality minus task-mean's budget router's, paired
	// by seed.
	BudgetQuality ival    `json:"budget_router_quality_share,omitzero"`
	BudgetCost    ival    `json:"budget_router_cost_share,omitzero"`
	BudgetOver    ival    `json:"budget_router_cost_over_limit,omitzero"`
	BudgetMaxOver jsonNum `json:"budget_router_max_cost_over_limit,omitempty"`
	BudgetGain    ival    `json:"budget_router_quality_share_minus_task_mean,omitzero"`
	// BudgetLimit is the limit the budget router was held to as a share
	// of the strongest test model's mean cost; BudgetValCost, with
	// --budget-target, the calibrated router's spend on the validation
	// part as a share of the strongest model's there.
	BudgetLimit   ival `json:"budget_router_limit_share,omitzero"`
	BudgetValCost ival `json:"budget_router_validation_cost_share,omitzero"`
}

type fixedSummary struct {
	Model   string  `json:"model"`
	Quality float64 `json:"quality"`
	Cost    float64 `json:"cost"`
}

type banditSummary struct {
	Policy    string `json:"policy"`
	Reward    ival   `json:"test_reward"`
	Score     ival   `json:"test_score"`
	Cost      ival   `json:"test_cost"`
	BestFixed ival   `json:"best_fixed_test_reward"`
	// Margin is the policy's test reward minus the best fixed model's, per
	// seed.
	Margin ival `json:"margin_over_best_fixed"`
	Beats  int  `json:"seeds_beating_every_fixed"`
}

// loadHeldout returns the train and test tables: --train/--test, or
// --split of the --data table.
func loadHeldout(fl benchdataFlags, seed uint64) (*datasets.Table, *datasets.Table, error) {
	ho := fl.ho
	if ho.train != "" || ho.test != "" {
		if ho.train == "" || ho.test == "" {
			return nil, nil, errors.New("--train and --test go together")
		}
		if ho.split != 0 {
			return nil, nil, errors.New("--split: not with --train/--test")
		}
		if fl.data != "routerbench" {
			return nil, nil, fmt.Errorf("--train/--test: only --data routerbench files (got %q)", fl.data)
		}
		lo := datasets.LoadOpts{RejectMissing: !ho.skipMissing}
		train, err := datasets.LoadRouterBenchOpts(lo, ho.train)
		if err != nil {
			return nil, nil, fmt.Errorf("--train %s: %w", ho.train, err)
		}
		lo.Models = train.Models
		test, err := datasets.LoadRouterBenchOpts(lo, ho.test)
		if err != nil {
			return nil, nil, fmt.Errorf("--test %s: %w", ho.test, err)
		}
		return train, test, nil
	}
	fl.strict = !ho.skipMissing
	tb, err := loadBenchdata(fl)
	if err != nil {
		return nil, nil, err
	}
	if err := applyPrices(tb, fl.prices); err != nil {
		return nil, nil, err
	}
	return tb.Split(ho.split, seed)
}

func runHeldout(ctx context.Context, fl benchdataFlags, reg *policy.Registry, out io.Writer) error {
	ho := fl.ho
	if ho.seeds < 1 {
		return fmt.Errorf("--seeds %d: must be >= 1", ho.seeds)
	}
	if ho.banditPasses < 1 {
		return fmt.Errorf("--bandit-passes %d: must be >= 1", ho.banditPasses)
	}
	if !(ho.banditLambda >= 0) || math.IsInf(ho.banditLambda, 1) {
		return fmt.Errorf("--bandit-lambda %v: must be a finite number >= 0", ho.banditLambda)
	}
	ts, err := ho.textSpec(ho.textBuckets)
	if err != nil {
		return err
	}
	bts, err := ho.textSpec(ho.banditBuckets)
	if err != nil {
		return err
	}
	var learners []string
	for _, l := range strings.Split(ho.learners, ",") {
		if l = strings.TrimSpace(l); l != "" {
			learners = append(learners, l)
		}
	}
	var bandits []policy.Spec
	if ho.bandit != "" {
		if bandits, err = policy.ParseSpecs(ho.bandit); err != nil {
			return fmt.Errorf("--bandit: %w", err)
		}
	}
	one, zero := 1.0, 0.0
	lam := ho.banditLambda
	rw, err := (&decision.RewardSpec{Quality: &one, Cost: &zero, Latency: &zero, Lambda: &lam}).Reward()
	if err != nil {
		return fmt.Errorf("--bandit-lambda: %w", err)
	}
	sum := &heldoutSummary{Lambda: lam, Passes: ho.banditPasses}
	for s := range ho.seeds {
		seed := fl.seed + uint64(s)
		train, test, err := loadHeldout(fl, seed)
		if err != nil {
			return err
		}
		if err := addCascades(fl.cascades, train, test); err != nil {
			return err
		}
		bshare := ho.budgetShare
		if bshare <= 0 {
			bshare = -1
		}
		res, err := datasets.HeldOut(ctx, train, test, datasets.HeldOutOpts{Text: ts, Learners: learners, Seed: seed, Budget: bshare,
			BudgetTarget: ho.budgetTarget, BudgetEta: ho.budgetEta})
		if err != nil {
			return err
		}
		run := heldoutRun{Seed: seed, Result: res, Metrics: map[string]datasets.Metrics{}}
		if s == 0 {
			sum.Table, sum.Models = strings.TrimSuffix(train.Name, "/train"), res.Models
		}
		strong, _ := datasets.Strongest(res.Fixed)
		ref := refModel(res)
		sum.Strong, sum.Ref = res.Models[strong], res.Models[ref]
		for _, c := range res.Curves {
			run.Metrics[c.Learner] = datasets.Measure(c.Points, res.Fixed, ref)
		}
		run.Metrics["fixed-hull"] = datasets.Measure(res.Fixed, res.Fixed, ref)
		if len(bandits) > 0 {
			spec, err := train.TextEncoderSpec(bts)
			if err != nil {
				return err
			}
			enc, err := policy.NewEncoder(spec)
			if err != nil {
				return err
			}
			for _, bs := range bandits {
				name := bs.String()
				bs = cloneSpec(bs)
				if _, ok := bs.Params["seed"]; !ok {
					bs.Params["seed"] = strconv.FormatUint(sim.PolicySeed(seed), 10)
				}
				if _, ok := bs.Params["dim"]; !ok {
					bs.Params["dim"] = strconv.Itoa(enc.Dim())
				}
				p, err := reg.New(bs)
				if err != nil {
					return fmt.Errorf("--bandit %s: %w", bs, err)
				}
				tr, err := datasets.Evaluate(ctx, train, p, datasets.Opts{Seed: seed, Passes: ho.banditPasses, Shuffle: true, Encoder: enc, Reward: rw, CurveEvery: 500})
				if err != nil {
					return fmt.Errorf("--bandit %s: %w", bs, err)
				}
				te, err := datasets.Evaluate(ctx, test, p, datasets.Opts{Seed: seed, Frozen: true, Encoder: enc, Reward: rw})
				if err != nil {
					return fmt.Errorf("--bandit %s: %w", bs, err)
				}
				br := banditRun{Policy: name, TrainMean: tr.MeanReward, TestReward: te.MeanReward, TestScore: te.MeanScore,
					TestCost: te.CostTotal / float64(te.Decisions), BestFixed: te.BestFixed, Curve: tr.Curve}
				for _, f := range te.Fixed {
					br.Fixed = append(br.Fixed, f.MeanReward)
				}
				run.Bandits = append(run.Bandits, br)
			}
		}
		if run.Logged, err = runLogged(ctx, ho.logged, ho, reg, train, test, bts, rw, seed); err != nil {
			return err
		}
		sum.Seeds = append(sum.Seeds, seed)
		if len(train.Cascades) > 0 {
			sum.Cascades = append(sum.Cascades, train.Models[train.SingleModels():])
		}
		sum.Runs = append(sum.Runs, run)
	}
	summarise(sum)
	summariseLogged(sum)
	nameCascades(sum)
	if sum.BudgetLimit.N > 0 {
		sum.BudgetShare, sum.BudgetTarget = ho.budgetShare, ho.budgetTarget
		if ho.budgetTarget > 0 {
			sum.BudgetShare = 0
		}
		sum.BudgetEta = ho.budgetEta
		if sum.BudgetEta == 0 {
			sum.BudgetEta = policy.DefaultBudgetEta
		}
	}
	if ho.savePolicy != "" {
		if err := saveRouter(fl, ts); err != nil {
			return err
		}
	}
	if ho.exportChoices != "" {
		if err := exportChoices(ho.exportChoices, sum); err != nil {
			return err
		}
	}
	if ho.out != "" {
		if err := writeHeldoutReport(ho.out, sum, fl); err != nil {
			return err
		}
	}
	if fl.json {
		return json.NewEncoder(out).Encode(sum)
	}
	return writeHeldoutText(out, sum)
}

// refModel is the reference cheap model of the must-show figure: Yi-34B
// when present, else the fixed model with the best quality per dollar
// among those cheaper than the strongest.
func refModel(res *datasets.HeldOutResult) int {
	for m, name := range res.Models {
		if strings.Contains(name, "Yi-34B") && !res.Fixed[m].Cascade {
			return m
		}
	}
	strong, _ := datasets.Strongest(res.Fixed)
	ref := strong
	for m, f := range res.Fixed {
		if !f.Cascade && f.Cost < res.Fixed[strong].Cost && (ref == strong || f.Quality > res.Fixed[ref].Quality) {
			ref = m
		}
	}
	return ref
}

// ival is a mean with its 95% interval over seeds; NaN (undefined) is
// written as JSON null.
type ival struct {
	Mean jsonNum `json:"mean"`
	Lo   jsonNum `json:"ci_low"`
	Hi   jsonNum `json:"ci_high"`
	N    int     `json:"n"`
}

func meanCI(xs []float64) ival {
	iv := experiments.MeanCI(xs, 0.95)
	return ival{Mean: jsonNum(iv.Mean), Lo: jsonNum(iv.Lo), Hi: jsonNum(iv.Hi), N: iv.N}
}

// HalfWidth is half the interval's width.
func (iv ival) HalfWidth() float64 { return float64(iv.Hi-iv.Lo) / 2 }

// jsonNum is a float64 written as null when NaN or infinite.
type jsonNum float64

func (x jsonNum) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func summarise(sum *heldoutSummary) {
	first := sum.Runs[0].Result
	k := len(first.Models)
	for m := range k {
		var q, c float64
		for _, r := range sum.Runs {
			q += r.Result.Fixed[m].Quality
			c += r.Result.Fixed[m].Cost
		}
		n := float64(len(sum.Runs))
		sum.Fixed = append(sum.Fixed, fixedSummary{Model: first.Models[m], Quality: q / n, Cost: c / n})
	}
	collect := func(name string, f func(datasets.Metrics) float64) ival {
		var xs []float64
		for _, r := range sum.Runs {
			xs = append(xs, f(r.Metrics[name]))
		}
		return meanCI(xs)
	}
	sum.Hull = collect("fixed-hull", func(m datasets.Metrics) float64 { return m.AIQ })
	sum.HullAPGR = collect("fixed-hull", func(m datasets.Metrics) float64 { return m.APGR })
	var hs []float64
	for _, r := range sum.Runs {
		hs = append(hs, datasets.HullStrongShare(r.Result.Fixed, 0.5))
	}
	sum.HullStrong50 = meanCI(hs)
	// The strongest test model's quality and cost, per run, for the
	// budget routers' shares.
	strongQC := func(r heldoutRun) (float64, float64) {
		s, _ := datasets.Strongest(r.Result.Fixed)
		return r.Result.Fixed[s].Quality, r.Result.Fixed[s].Cost
	}
	if first.BudgetUSD > 0 {
		var xs []float64
		for _, r := range sum.Runs {
			_, cs := strongQC(r)
			xs = append(xs, r.Result.BudgetUSD/cs)
		}
		sum.BudgetLimit = meanCI(xs)
	}
	simpleBudget := -1
	for li, c := range first.Curves {
		if c.Learner == "task-mean" && c.Budget != nil {
			simpleBudget = li
		}
	}
	for li, c := range first.Curves {
		ls := learnerSummary{Learner: c.Learner,
			AIQ:      collect(c.Learner, func(m datasets.Metrics) float64 { return m.AIQ }),
			APGR:     collect(c.Learner, func(m datasets.Metrics) float64 { return m.APGR }),
			AtBudget: collect(c.Learner, func(m datasets.Metrics) float64 { return m.AtBudget }),
			AtRef:    collect(c.Learner, func(m datasets.Metrics) float64 { return m.AtRef }),
		}
		var sh []float64
		for _, r := range sum.Runs {
			sh = append(sh, datasets.StrongShare(&r.Result.Curves[li], r.Result.Fixed, 0.5))
		}
		ls.Strong50 = meanCI(sh)
		ls.AtBudgetHull = collect(c.Learner, func(m datasets.Metrics) float64 { return m.AtBudgetHull })
		if c.Budget != nil {
			var bq, bc, bo, bg, bl, bv []float64
			maxOver := math.Inf(-1)
			for _, r := range sum.Runs {
				qs, cs := strongQC(r)
				b := r.Result.Curves[li].Budget
				over := b.Cost/b.LimitUSD - 1
				bq, bc, bo = append(bq, b.Quality/qs), append(bc, b.Cost/cs), append(bo, over)
				bl, bv = append(bl, b.LimitUSD/cs), append(bv, r.Result.Curves[li].BudgetValidationCost)
				maxOver = max(maxOver, over)
				if simpleBudget >= 0 {
					bg = append(bg, (b.Quality-r.Result.Curves[simpleBudget].Budget.Quality)/qs)
				}
			}
			ls.BudgetQuality, ls.BudgetCost, ls.BudgetOver, ls.BudgetMaxOver = meanCI(bq), meanCI(bc), meanCI(bo), jsonNum(maxOver)
			ls.BudgetLimit = meanCI(bl)
			if slices.ContainsFunc(bv, func(x float64) bool { return x != 0 }) { // calibrated (--budget-target)
				ls.BudgetValCost = meanCI(bv)
			}
			if simpleBudget >= 0 {
				ls.BudgetGain = meanCI(bg)
			}
		}
		for i := range datasets.CPTLevels {
			ls.CPT = append(ls.CPT, collect(c.Learner, func(m datasets.Metrics) float64 { return m.CPT[i] }))
		}
		for p := range c.Points {
			var pt datasets.Point
			for _, r := range sum.Runs {
				q := r.Result.Curves[li].Points[p]
				pt.Lambda = q.Lambda
				pt.Cost += q.Cost / float64(len(sum.Runs))
				pt.Quality += q.Quality / float64(len(sum.Runs))
			}
			ls.Curve = append(ls.Curve, pt)
		}
		sum.Learners = append(sum.Learners, ls)
	}
	sum.Bandits = summariseBandits(sum.Runs, func(r heldoutRun) []banditRun { return r.Bandits })
}

// summariseBandits aggregates over seeds the per-run policies that pick
// returns (the online bandits or the routers fitted from a log).
func summariseBandits(runs []heldoutRun, pick func(heldoutRun) []banditRun) []banditSummary {
	var out []banditSummary
	for i, b := range pick(runs[0]) {
		bs := banditSummary{Policy: b.Policy}
		var rew, sc, co, bf, mg []float64
		for _, r := range runs {
			x := pick(r)[i]
			best := math.Inf(-1)
			for _, f := range x.Fixed {
				best = max(best, f)
			}
			rew, sc, co, bf, mg = append(rew, x.TestReward), append(sc, x.TestScore), append(co, x.TestCost), append(bf, best), append(mg, x.TestReward-best)
			if x.TestReward > best {
				bs.Beats++
			}
		}
		bs.Reward, bs.Score, bs.Cost, bs.BestFixed, bs.Margin = meanCI(rew), meanCI(sc), meanCI(co), meanCI(bf), meanCI(mg)
		out = append(out, bs)
	}
	return out
}

// bestLearner is the learner with the highest mean AIQ.
func bestLearner(sum *heldoutSummary) int {
	best := 0
	for i, l := range sum.Learners {
		if l.AIQ.Mean > sum.Learners[best].AIQ.Mean {
			best = i
		}
	}
	return best
}

func ci(iv ival, scale float64, prec int) string {
	m := float64(iv.Mean)
	if math.IsNaN(m) {
		return "n/a"
	}
	if iv.N < 2 || math.IsNaN(float64(iv.Lo)) {
		return strconv.FormatFloat(m*scale, 'f', prec, 64)
	}
	return fmt.Sprintf("%.*f ± %.*f", prec, m*scale, prec, iv.HalfWidth()*scale)
}

// nameCascades renames, in the summary's models and fixed rows, a
// cascade that is not the same on every seed ("auto" chose differently):
// its averaged row then stands for "cascade N (chosen per seed)"; the
// choices are in Cascades.
func nameCascades(sum *heldoutSummary) {
	if len(sum.Cascades) == 0 {
		return
	}
	single := len(sum.Models) - len(sum.Cascades[0])
	sum.Models = slices.Clone(sum.Models)
	for j := range sum.Cascades[0] {
		for _, cs := range sum.Cascades[1:] {
			if cs[j] != sum.Cascades[0][j] {
				name := fmt.Sprintf("cascade %d (chosen per seed)", j+1)
				sum.Models[single+j] = name
				if single+j < len(sum.Fixed) {
					sum.Fixed[single+j].Model = name
				}
				break
			}
		}
	}
}

func writeHeldoutText(out io.Writer, sum *heldoutSummary) error {
	r0 := sum.Runs[0].Result
	fmt.Fprintf(out, "held-out: %s, %d training and %d test rows, seeds %v; strongest model %s, reference cheap model %s\n\n",
		sum.Table, r0.TrainRows, r0.TestRows, sum.Seeds, sum.Strong, sum.Ref)
	for i, cs := range sum.Cascades {
		fmt.Fprintf(out, "seed %d: cascades %s\n", sum.Seeds[i], strings.Join(cs, ", "))
	}
	if len(sum.Cascades) > 0 {
		fmt.Fprintln(out)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "learner\tAIQ\tAPGR\tCPT 50%\tCPT 80%\tCPT 90%\tCPT 95%\tquality @≤25% cost\tgain @ ref cost\tstrong calls @50% PGR\t")
	for _, l := range sum.Learners {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Learner, ci(l.AIQ, 1, 4), ci(l.APGR, 1, 3),
			ci(l.CPT[0], 100, 1)+"%", ci(l.CPT[1], 100, 1)+"%", ci(l.CPT[2], 100, 1)+"%", ci(l.CPT[3], 100, 1)+"%",
			ci(l.AtBudget, 100, 1)+"%", ci(l.AtRef, 1, 4), ci(l.Strong50, 100, 1)+"%")
	}
	fmt.Fprintf(w, "fixed-model hull\t%s\t%s\t\t\t\t\t\t\t%s\t\n", ci(sum.Hull, 1, 4), ci(sum.HullAPGR, 1, 3), ci(sum.HullStrong50, 100, 1)+"%")
	if err := w.Flush(); err != nil {
		return err
	}
	if err := writeBudgetTable(out, sum); err != nil {
		return err
	}
	writeMustShow(out, sum)
	fmt.Fprintln(out, "\nCPT: cost (share of the strongest model's) of the cheapest λ reaching that share of its quality; quality @≤25% cost: best λ costing at most 25% of the strongest model, as a share of its quality; gain @ ref cost: best quality at no more than the reference model's cost minus its quality; strong calls @50% PGR: share of prompts sent to the strongest model at the cheapest λ recovering half the gap between the cheapest and the strongest model (RouteLLM).")
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "always model\tmean score\tmean cost\t")
	for _, f := range sum.Fixed {
		fmt.Fprintf(w, "%s\t%.4f\t$%.6f\t\n", f.Model, f.Quality, f.Cost)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(sum.Bandits) > 0 {
		fmt.Fprintf(out, "\nbandit feedback only, reward quality − %g·cost, learnt online over the training part, scored frozen on the test part:\n\n", sum.Lambda)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "policy\ttest reward\tbest fixed\tmargin\tseeds beating every fixed\tmean score\tmean cost\t")
		for _, b := range sum.Bandits {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t$%s\t\n", b.Policy, ci(b.Reward, 1, 4), ci(b.BestFixed, 1, 4), ci(b.Margin, 1, 4),
				b.Beats, len(sum.Runs), ci(b.Score, 1, 4), ci(b.Cost, 1, 6))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nonline learning curve of seed %d: running mean score / mean cost per request over the shuffled training stream (%d passes):\n\n", sum.Seeds[0], sum.Passes)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(w, "decisions\t")
		for _, b := range sum.Runs[0].Bandits {
			fmt.Fprintf(w, "%s\t", b.Policy)
		}
		fmt.Fprintln(w)
		for i, p := range sum.Runs[0].Bandits[0].Curve {
			fmt.Fprintf(w, "%d\t", p.Decisions)
			for _, b := range sum.Runs[0].Bandits {
				fmt.Fprintf(w, "%.4f / $%.6f\t", b.Curve[i].MeanScore, b.Curve[i].MeanCost)
			}
			fmt.Fprintln(w)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return writeLoggedText(out, sum)
}

// writeBudgetTable sets the budget routers (enforced online) beside the
// two figures read off the λ curve at the same budget.
func writeBudgetTable(out io.Writer, sum *heldoutSummary) error {
	if sum.BudgetLimit.N == 0 {
		return nil
	}
	limit := fmt.Sprintf("limit %s%% of %s's mean cost per prompt (%g%% of its mean cost on the training part)", ci(sum.BudgetLimit, 100, 1), sum.Strong, 100*sum.BudgetShare)
	calibrated := sum.BudgetTarget > 0
	if calibrated {
		limit = fmt.Sprintf("each learner's limit calibrated on the training part alone: fitted without its validation rows, the largest limit (in steps of 1%% of the target) whose router spends on those rows, averaged over 4 orders, at most %g%% of %s's mean cost there; column \"limit\": that limit as a share of %s's mean test cost, and its validation spend", 100*sum.BudgetTarget, sum.Strong, sum.Strong)
	}
	fmt.Fprintf(out, "\nbudget router: test prompts streamed in a seeded random order, each routed to argmax predicted score − price·predicted cost; the dual price (eta %g) follows the realised cost of every routed prompt, warmed up by the same stream over the training part (in-sample predictions, recorded costs); %s. Beside it, read off the λ curve at 25%% of its test cost: step = best single λ point at or below it; hull = randomising between the two λ points around it (a randomised router).\n\n",
		sum.BudgetEta, limit)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "learner\tbudget router quality\trealised cost\tover limit (mean; worst seed)\tvs task-mean (paired)\tstep quality\thull quality (randomised)\t"
	if calibrated {
		head += "limit (validation spend)\t"
	}
	fmt.Fprintln(w, head)
	for _, l := range sum.Learners {
		if l.BudgetQuality.N == 0 {
			continue
		}
		gain := "—"
		if l.BudgetGain.N > 0 && l.Learner != "task-mean" {
			gain = signedCI(l.BudgetGain, 100, 1) + " pp"
		}
		fmt.Fprintf(w, "%s\t%s%%\t%s%%\t%s%%; %+.1f%%\t%s\t%s%%\t%s%%\t", l.Learner, ci(l.BudgetQuality, 100, 1), ci(l.BudgetCost, 100, 1),
			signedCI(l.BudgetOver, 100, 1), 100*float64(l.BudgetMaxOver), gain, ci(l.AtBudget, 100, 1), ci(l.AtBudgetHull, 100, 1))
		if calibrated {
			fmt.Fprintf(w, "%s%% (%s%%)\t", ci(l.BudgetLimit, 100, 1), ci(l.BudgetValCost, 100, 1))
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nquality and cost as shares of the strongest model's on the test part; over limit: realised mean cost per prompt / limit − 1.")
	return nil
}

// signedCI is ci with an explicit sign.
func signedCI(iv ival, scale float64, prec int) string {
	s := ci(iv, scale, prec)
	if !strings.HasPrefix(s, "-") && s != "n/a" {
		s = "+" + s
	}
	return s
}

// exportChoices writes the best learner's choices on the first seed's
// test rows: sample_id,eval_name,lambda,model.
func exportChoices(path string, sum *heldoutSummary) error {
	res := sum.Runs[0].Result
	c := res.Curves[bestLearner(sum)]
	return atomicfile.Write(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write([]string{"sample_id", "eval_name", "lambda", "model"}); err != nil {
			return err
		}
		for l, lam := range res.Lambdas {
			for i := range res.Test.Rows {
				row := &res.Test.Rows[i]
				if err := cw.Write([]string{row.ID, row.Task, strconv.FormatFloat(lam, 'g', -1, 64), res.Models[c.Choices[l][i]]}); err != nil {
					return err
				}
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

// writeHeldoutReport writes report.md, report.html and heldout.json to dir.
func writeHeldoutReport(dir string, sum *heldoutSummary, fl benchdataFlags) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	var text strings.Builder
	if err := writeHeldoutText(&text, sum); err != nil {
		return err
	}
	svg, err := experiments.CurveSVG(curveSeries(sum))
	if err != nil {
		return fmt.Errorf("cost–quality plot: %w", err)
	}
	md := "# Held-out cost–quality evaluation\n\n```\n" + text.String() + "```\n\n![cost–quality curve](curve.svg)\n"
	html := "<!doctype html><meta charset=utf-8><title>routelab held-out evaluation</title>\n<h1>Held-out cost–quality evaluation</h1>\n<pre>" +
		htmlEscape(text.String()) + "</pre>\n" + string(svg) + "\n"
	js, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"report.md": []byte(md), "report.html": []byte(html), "curve.svg": svg, "heldout.json": js} {
		if err := atomicfile.Write(filepath.Join(dir, name), func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// curveSeries are the learners' mean curves and the fixed models.
func curveSeries(sum *heldoutSummary) experiments.CurvePlot {
	cp := experiments.CurvePlot{Title: "held-out cost–quality (" + sum.Table + ")"}
	for _, l := range sum.Learners {
		s := experiments.CurveSeries{Name: l.Learner}
		for _, p := range datasets.Frontier(l.Curve) {
			s.X = append(s.X, p.Cost)
			s.Y = append(s.Y, p.Quality)
		}
		cp.Curves = append(cp.Curves, s)
	}
	hull := experiments.CurveSeries{Name: "fixed-model hull"}
	var pts []datasets.Point
	for _, f := range sum.Fixed {
		pts = append(pts, datasets.Point{Cost: f.Cost, Quality: f.Quality})
		cp.Points = append(cp.Points, experiments.CurvePoint{Name: shortModel(f.Model), X: f.Cost, Y: f.Quality})
	}
	for _, p := range datasets.Frontier(pts) {
		hull.X = append(hull.X, p.Cost)
		hull.Y = append(hull.Y, p.Quality)
	}
	cp.Curves = append(cp.Curves, hull)
	return cp
}

func shortModel(m string) string {
	if i := strings.LastIndex(m, "/"); i >= 0 {
		return m[i+1:]
	}
	return m
}

// cloneSpec copies s with its own Params map.
func cloneSpec(s policy.Spec) policy.Spec {
	c := s
	c.Params = make(map[string]string, len(s.Params))
	for k, v := range s.Params {
		c.Params[k] = v
	}
	return c
}

// writeMustShow states the target figures against the results:
// for each, the learner that does best, its mean over seeds and whether
// the target is met by the mean.
func writeMustShow(out io.Writer, sum *heldoutSummary) {
	best := func(f func(l learnerSummary) float64) (int, float64) {
		bi, bv := -1, math.Inf(-1)
		for i, l := range sum.Learners {
			if v := f(l); !math.IsNaN(v) && v > bv {
				bi, bv = i, v
			}
		}
		return bi, bv
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	var simple learnerSummary
	for _, l := range sum.Learners {
		if l.Learner == "task-mean" {
			simple = l
		}
	}
	if !strings.HasPrefix(sum.Table, "routerbench") {
		return // the targets are RouterBench's
	}
	fmt.Fprintln(out)
	if i, v := best(func(l learnerSummary) float64 { return float64(l.AtBudget.Mean) }); i >= 0 {
		l := sum.Learners[i]
		fmt.Fprintf(out, "target 1: >= 95%% of %s's score at <= 25%% of its cost: step (best λ point at or below it): %s reaches %s%% (task-mean %s%%): %s\n",
			sum.Strong, l.Learner, ci(l.AtBudget, 100, 1), ci(simple.AtBudget, 100, 1), met(v >= 0.95))
	}
	// The budget routers and the hull: the best learned router beside the
	// task-mean baseline, whether it beats it (paired over seeds), and
	// whether the best of all meets the target.
	learned := func(f func(l learnerSummary) float64) (int, float64) {
		bi, bv := -1, math.Inf(-1)
		for i, l := range sum.Learners {
			if v := f(l); l.Learner != "task-mean" && !math.IsNaN(v) && v > bv {
				bi, bv = i, v
			}
		}
		return bi, bv
	}
	bq := func(l learnerSummary) float64 { return float64(l.BudgetQuality.Mean) }
	if i, _ := learned(bq); i >= 0 && sum.BudgetLimit.N > 0 && simple.BudgetQuality.N > 0 {
		l := sum.Learners[i]
		verdict := "does not beat task-mean (paired interval includes 0)"
		switch {
		case float64(l.BudgetGain.Lo) > 0:
			verdict = "beats task-mean (paired interval above 0)"
		case float64(l.BudgetGain.Hi) < 0:
			verdict = "is below task-mean (paired interval below 0)"
		}
		bi, _ := best(bq)
		b := sum.Learners[bi]
		fmt.Fprintf(out, "target 1, budget router enforced online: best learned router %s reaches %s%% at %s%% of the cost, task-mean %s%% at %s%%; %s %s pp: it %s; best of all (%s) %s (needs >= 95%% at <= 25%% of the cost)\n",
			l.Learner, ci(l.BudgetQuality, 100, 1), ci(l.BudgetCost, 100, 1), ci(simple.BudgetQuality, 100, 1), ci(simple.BudgetCost, 100, 1),
			l.Learner, signedCI(l.BudgetGain, 100, 1), verdict, b.Learner, met(bq(b) >= 0.95 && float64(b.BudgetCost.Mean) <= 0.25))
	}
	bh := func(l learnerSummary) float64 { return float64(l.AtBudgetHull.Mean) }
	if i, _ := learned(bh); i >= 0 {
		l := sum.Learners[i]
		bi, v := best(bh)
		fmt.Fprintf(out, "target 1, hull (randomising between the two λ points around 25%% of the cost): best learned router %s reaches %s%%, task-mean %s%%; best of all (%s): %s\n",
			l.Learner, ci(l.AtBudgetHull, 100, 1), ci(simple.AtBudgetHull, 100, 1), sum.Learners[bi].Learner, met(v >= 0.95))
	}
	if i, v := best(func(l learnerSummary) float64 { return float64(l.AtRef.Mean) }); i >= 0 {
		l := sum.Learners[i]
		fmt.Fprintf(out, "target 2: above %s's score at no more than its cost: %s gains %s (task-mean %s): %s\n",
			sum.Ref, l.Learner, ci(l.AtRef, 1, 4), ci(simple.AtRef, 1, 4), met(v > 0))
	}
	for _, b := range sum.Bandits {
		fmt.Fprintf(out, "target 3: bandit feedback only, %s beats every fixed model's reward at λ=%g in %d of %d seeds (margin over the best fixed model %s): %s\n",
			b.Policy, sum.Lambda, b.Beats, len(sum.Runs), ci(b.Margin, 1, 4), met(b.Beats == len(sum.Runs)))
	}
}

// saveRouter fits --save-learner on the first seed's training part and
// writes it as a linear-router policy artifact.
func saveRouter(fl benchdataFlags, ts policy.TextSpec) error {
	ho := fl.ho
	if !(ho.saveLambda >= 0) || math.IsInf(ho.saveLambda, 1) {
		return fmt.Errorf("--save-lambda %v: must be a finite number >= 0", ho.saveLambda)
	}
	budget, err := policy.ParseBudget(ho.saveBudget)
	if err != nil {
		return fmt.Errorf("--save-budget: %w", err)
	}
	train, test, err := loadHeldout(fl, fl.seed)
	if err != nil {
		return err
	}
	if err := addCascades(fl.cascades, train, test); err != nil {
		return err
	}
	p, spec, err := datasets.FitRouter(train, ts, ho.saveLearner, policy.LinearRouterOpts{Lambda: ho.saveLambda, Budget: budget}, fl.seed)
	if err != nil {
		return fmt.Errorf("--save-policy: %w", err)
	}
	one, zero, lam := 1.0, 0.0, ho.saveLambda
	rw, err := (&decision.RewardSpec{Quality: &one, Cost: &zero, Latency: &zero, Lambda: &lam}).Reward()
	if err != nil {
		return fmt.Errorf("--save-lambda: %w", err)
	}
	a, err := artifact.New(p, spec, rw, train.Models, artifact.Provenance{Source: "benchdata", Rows: int64(len(train.Rows)), Seed: fl.seed,
		Data: train.Sources, Command: os.Args, CodeVersion: versionString(),
		Note: fmt.Sprintf("%s router on the training part of %s (text IDF fitted on it)", ho.saveLearner, train.Name)})
	if err != nil {
		return fmt.Errorf("--save-policy: %w", err)
	}
	if err := artifact.Write(ho.savePolicy, a); err != nil {
		return fmt.Errorf("--save-policy: %w", err)
	}
	return nil
}
