package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// simDatasetView is `routelab sim --dataset`'s output: the keys of a
// scenario run that apply to a benchmark table, plus the table's
// references.
type simDatasetView struct {
	Policy           string             `json:"policy"`
	Scenario         string             `json:"scenario"`
	Seed             uint64             `json:"seed"`
	Requests         int                `json:"requests"`
	MeanReward       float64            `json:"mean_reward"`
	OracleMeanReward float64            `json:"oracle_mean_reward"`
	Regret           float64            `json:"regret"`
	CostTotal        float64            `json:"cost_total"`
	ArmShares        map[string]float64 `json:"arm_shares"`
	// MeanQuality is the mean benchmark score of the chosen models.
	MeanQuality float64 `json:"mean_quality"`
	// BestSingle* is the fixed model with the highest mean score, its mean
	// score and its mean cost per request.
	BestSingleModel   string  `json:"best_single_model"`
	BestSingleQuality float64 `json:"best_single_quality"`
	BestSingleCost    float64 `json:"best_single_cost"`
	// OracleQuality is the mean of every row's best score.
	OracleQuality float64 `json:"oracle_quality"`
	// APGR is this run's performance gap recovered: (mean quality − the
	// cheapest model's)/(the best single model's − the cheapest's). One
	// run is one point; the average over a cost range needs a curve
	// (routelab benchdata --split).
	APGR float64 `json:"apgr"`
}

// runSimDataset runs --policy over a benchmark table (one shuffled pass
// per --requests rows, at least one pass) through the decision core, as
// `routelab benchdata` does, and reports it with sim's keys.
func runSimDataset(ctx context.Context, fl simFlags, out io.Writer) error {
	kind, path, ok := strings.Cut(fl.dataset, ":")
	if !ok || path == "" || (kind != "routerbench" && kind != "routellm") {
		return fmt.Errorf("--dataset %q: want routerbench:PATH or routellm:PATH", fl.dataset)
	}
	if fl.log != "" || fl.savePolicy != "" {
		return fmt.Errorf("--dataset: --log and --save-policy are for scenarios")
	}
	tb, err := loadBenchdata(benchdataFlags{data: kind, path: path})
	if err != nil {
		return fmt.Errorf("--dataset: %w", err)
	}
	if err := addCascades(fl.cascades, tb); err != nil {
		return err
	}
	var p policy.Policy
	encSpec, rw := tb.EncoderSpec(), decision.Reward{}
	if fl.policyFile != "" {
		// A trained router (routelab benchdata --save-policy) with its
		// encoder (text IDF included) and reward.
		a, err := artifact.Read(fl.policyFile)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		if rw, err = a.RewardFunc(); err != nil {
			return fmt.Errorf("--policy-file %s: %w", fl.policyFile, err)
		}
		if err := a.Check(a.Encoder, rw, tb.Models); err != nil {
			return fmt.Errorf("--policy-file %s vs --dataset %s: %w", fl.policyFile, fl.dataset, err)
		}
		if p, err = a.Policy(newRegistry()); err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		encSpec = a.Encoder
	} else {
		spec, err := policy.ParseSpec(fl.policy)
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		if _, ok := spec.Params["seed"]; !ok {
			spec.Params["seed"] = strconv.FormatUint(sim.PolicySeed(fl.seed), 10)
		}
		if p, err = newRegistry().New(spec); err != nil {
			return fmt.Errorf("--policy %s: %w", spec, err)
		}
	}
	if fl.budget != "" {
		b, err := policy.ParseBudget(fl.budget)
		if err != nil {
			return fmt.Errorf("--budget: %w", err)
		}
		if b.Window > 0 {
			return fmt.Errorf("--budget %q: benchmark rows have no time, so no window: give per_request", fl.budget)
		}
		bp, ok := p.(policy.Budgeted)
		if !ok {
			return fmt.Errorf("--budget: policy %s enforces no spend budget (linear-router does)", p.Name())
		}
		if err := bp.SetBudget(b); err != nil {
			return fmt.Errorf("--budget: %w", err)
		}
	}
	enc, err := policy.NewEncoder(encSpec)
	if err != nil {
		return fmt.Errorf("--dataset: feature encoder: %w", err)
	}
	passes := 1
	if fl.requests > len(tb.Rows) {
		passes = (fl.requests + len(tb.Rows) - 1) / len(tb.Rows)
	}
	r, err := datasets.Evaluate(ctx, tb, p, datasets.Opts{Seed: fl.seed, Passes: passes, Shuffle: true, Encoder: enc, Reward: rw})
	if err != nil {
		return err
	}
	v := simDatasetView{Policy: r.Policy, Scenario: fl.dataset, Seed: fl.seed, Requests: r.Decisions, MeanReward: r.MeanReward,
		OracleMeanReward: r.OracleMeanReward, Regret: r.Regret, CostTotal: r.CostTotal, ArmShares: map[string]float64{},
		MeanQuality: r.MeanScore}
	for _, s := range r.Shares {
		v.ArmShares[s.Model] = s.Share
	}
	// Single models only: a cascade (--cascade) is not one.
	best, cheap := 0, 0
	for m, f := range r.Fixed[:tb.SingleModels()] {
		if f.MeanScore > r.Fixed[best].MeanScore {
			best = m
		}
		if f.CostTotal < r.Fixed[cheap].CostTotal {
			cheap = m
		}
	}
	v.BestSingleModel = r.Fixed[best].Model
	v.BestSingleQuality = r.Fixed[best].MeanScore
	v.BestSingleCost = r.Fixed[best].CostTotal / float64(r.Decisions)
	for _, row := range tb.Rows {
		v.OracleQuality += slicesMax(row.Scores) / float64(len(tb.Rows))
	}
	v.APGR = math.NaN()
	if gap := v.BestSingleQuality - r.Fixed[cheap].MeanScore; gap > 0 {
		v.APGR = (v.MeanQuality - r.Fixed[cheap].MeanScore) / gap
	}
	if fl.json {
		if math.IsNaN(v.APGR) {
			v.APGR = 0 // no gap: nothing to recover
		}
		return json.NewEncoder(out).Encode(v)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "dataset\t%s (%d rows, %d requests)\n", fl.dataset, len(tb.Rows), r.Decisions)
	fmt.Fprintf(w, "policy\t%s\n", r.Policy)
	fmt.Fprintf(w, "mean reward\t%.4f (oracle %.4f, %.1f%%)\n", v.MeanReward, v.OracleMeanReward, 100*v.MeanReward/v.OracleMeanReward)
	fmt.Fprintf(w, "mean quality\t%.4f (oracle %.4f)\n", v.MeanQuality, v.OracleQuality)
	fmt.Fprintf(w, "cost\t$%.4f total, $%.6f per request\n", v.CostTotal, v.CostTotal/float64(r.Decisions))
	fmt.Fprintf(w, "best single model\t%s: quality %.4f, $%.6f per request\n", v.BestSingleModel, v.BestSingleQuality, v.BestSingleCost)
	fmt.Fprintf(w, "performance gap recovered\t%.3f\n", v.APGR)
	return w.Flush()
}

func slicesMax(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
