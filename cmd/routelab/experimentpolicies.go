package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/policy"
)

// experimentPoliciesDir is where `routelab experiment` writes the best
// policy per scenario, under its output directory.
const experimentPoliciesDir = "policies"

// writeBestPolicies writes, for each scenario, the best policy of the
// experiment (experiments.Analysis.Best: by reward/oracle, or mean reward
// on stateful scenarios) as a policy artifact DIR/policies/SCENARIO.json:
// the policy as it ended the scenario's first-seed cell (Opts.KeepTrained),
// with the scenario's encoder, reward and arms and the experiment as
// provenance. A best policy that learns nothing it could save (random,
// weighted) is reported and skipped. It returns the files written.
func writeBestPolicies(dir, specPath string, spec *experiments.Spec, res *experiments.Results, a *experiments.Analysis, errOut io.Writer) ([]string, error) {
	var written []string
	for _, sc := range spec.ScenarioList() {
		best := a.Best(sc.Name)
		var cell *experiments.Cell
		for i := range res.Cells {
			c := &res.Cells[i]
			if c.Scenario == sc.Name && c.Policy == best && c.Trained != nil {
				cell = c
				break
			}
		}
		if cell == nil {
			return written, fmt.Errorf("scenario %s: best policy %q has no trained cell", sc.Name, best)
		}
		if _, ok := cell.Trained.(policy.Snapshotter); !ok {
			fmt.Fprintf(errOut, "scenario %s: best policy %s learns no state; no artifact written\n", sc.Name, best)
			continue
		}
		metric := a.RankMetric(sc.Name)
		s, _ := a.Summary(sc.Name, best, metric)
		prov := artifact.Provenance{
			Source: "experiment", Rows: int64(cell.Result.Requests), Seed: cell.Seed, Scenario: sc.Name,
			Data: []string{specPath}, Command: os.Args, CodeVersion: versionString(),
			Note: fmt.Sprintf("best of experiment %s on scenario %s by %s (mean %.4f over %d seeds); the policy as it ended the seed-%d cell (%s)",
				spec.Name, sc.Name, metric, s.Mean, len(a.Seeds), cell.Seed, cell.PolicySpec),
		}
		art, err := artifact.New(cell.Trained, sc.EncoderSpec(), sc.RewardFunc(), scenarioCatalogue(sc), prov)
		if err != nil {
			return written, fmt.Errorf("scenario %s: best policy %s: %w", sc.Name, best, err)
		}
		pdir := filepath.Join(dir, experimentPoliciesDir)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return written, err
		}
		path := filepath.Join(pdir, sc.Name+".json")
		if err := artifact.Write(path, art); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}
