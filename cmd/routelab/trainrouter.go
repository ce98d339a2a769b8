package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/sim"
)

// runTrainRouter is `routelab train --learner`: a linear router fitted
// from the logs by offline.FitRouter, written as a policy artifact.
func runTrainRouter(ctx context.Context, fl trainFlags, out, errOut io.Writer) error {
	wt, ok := offline.RouterLearners[fl.learner]
	if !ok {
		return fmt.Errorf("--learner %q: want one of %s", fl.learner, strings.Join(slices.Sorted(maps.Keys(offline.RouterLearners)), ", "))
	}
	if fl.policy != "" || fl.init != "" {
		return fmt.Errorf("--learner: not with --policy or --init (it fits a linear router)")
	}
	if fl.unweighted {
		return fmt.Errorf("--unweighted: not with --learner (use --learner ridge-dm)")
	}
	if !(fl.l2 > 0) || math.IsInf(fl.l2, 1) {
		return fmt.Errorf("--l2 %v: must be a finite number > 0", fl.l2)
	}
	if fl.clip < 0 || math.IsNaN(fl.clip) || math.IsInf(fl.clip, 0) {
		return fmt.Errorf("--clip %v: must be a finite number >= 0", fl.clip)
	}
	cat, err := declaredCatalogue(fl.scenario, fl.config)
	if err != nil {
		return err
	}
	ropts, cleanup, err := logReaderOpts(ctx, fl.logs, fl.from, fl.to, fl.feedback, errOut)
	if err != nil {
		return err
	}
	defer cleanup()
	src := &logStats{src: newLogSource(ropts, fl.skipBad, fl.quiet, errOut)}
	p, st, err := offline.FitRouter(ctx, src, offline.RouterOpts{Weighting: wt, L2: fl.l2, Clip: fl.clip, Catalogue: cat})
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
	if len(st.Unfitted) > 0 {
		fmt.Fprintf(errOut, "warning: arms %v were never chosen in the logs: the router leaves them out\n", st.Unfitted)
	}
	_, err = fmt.Fprintf(out, "fitted %s router on %d rows (%d-slot vectors; arms %v chosen %v times; max 1/propensity %.3g, %d clipped, ESS %.0f) -> %s\n",
		fl.learner, st.Rows, st.Dim, st.Arms, st.Chosen, st.MaxWeight, st.Clipped, st.ESS, fl.out)
	return err
}

// declaredCatalogue is the arms of --scenario or --config (nil for
// neither).
func declaredCatalogue(scenario, config string) ([]string, error) {
	switch {
	case scenario != "" && config != "":
		return nil, fmt.Errorf("--scenario and --config: give at most one")
	case scenario != "":
		sc, err := sim.LoadScenario(scenario)
		if err != nil {
			return nil, fmt.Errorf("--scenario: %w", err)
		}
		return scenarioCatalogue(sc), nil
	case config != "":
		c, err := gateway.LoadConfig(config)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		ids := make([]string, len(c.Models))
		for i, m := range c.Models {
			ids[i] = m.ID
		}
		return ids, nil
	}
	return nil, nil
}
