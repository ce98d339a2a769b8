package offline

import (
	"context"
	"fmt"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy/neural"
	"github.com/routelab/routelab/replay"
)

// FitNeural trains a neural policy offline from logged decisions (see
// neural.NeuralLinear.Fit for the weighting and what the fit replaces):
// it adapts each record — feature vector, candidates, chosen arm, the
// logged propensity of the chosen arm, reward — to a neural.Row. A record
// whose propensities do not match its candidates is an error wrapping
// neural.ErrBadRecord and naming it, as are the rows Fit rejects; rows are
// never skipped.
func FitNeural(ctx context.Context, p *neural.NeuralLinear, src replay.Source, o neural.FitOpts) (neural.FitStats, error) {
	if p == nil {
		return neural.FitStats{}, fmt.Errorf("fit: nil policy")
	}
	return p.Fit(ctx, func(add func(*neural.Row) error) error {
		var row neural.Row
		var i int64
		return src.Scan(ctx, func(rec *decision.Record) error {
			d := &rec.Decision
			if len(d.Probs) != len(d.Candidates) {
				return fmt.Errorf("%w %d (request %q): %d propensities for %d candidates", neural.ErrBadRecord, i, rec.Request.ID, len(d.Probs), len(d.Candidates))
			}
			row = neural.Row{ID: rec.Request.ID, Vector: rec.Request.Features.Vector, Candidates: d.Candidates, Chosen: d.Chosen, Reward: rec.Reward}
			if d.Chosen >= 0 && d.Chosen < len(d.Probs) {
				row.Propensity = d.Probs[d.Chosen]
			} // else Fit rejects the chosen index
			i++
			return add(&row)
		})
	}, o)
}
