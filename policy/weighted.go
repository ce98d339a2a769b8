package policy

import (
	"context"
	"fmt"
	"math"

	"github.com/routelab/routelab/decision"
)

// Weighted is the seed's weighted-score formula: each candidate scores
//
//	score = wLatency·share(1/latency) + wAccuracy·share(quality) + wCost·share(1/cost)
//
// where share(x) is x divided by its sum over the candidates, latency and
// quality come from the live profile on the Arm, and cost is the request's
// expected price. The highest score wins (ties to the lowest index), so the
// policy is deterministic and reports propensities 1/0. Unknown profile
// values (zero) are replaced by the candidates' mean, or drop out when no
// candidate knows them. It does not learn from Update: its knowledge is the
// profile library's.
type Weighted struct {
	// Latency, Accuracy and Cost are the weights; defaults 0.4, 0.5, 0.1.
	Latency, Accuracy, Cost float64
	// OutTokens is the expected completion size used to price a request;
	// default 256.
	OutTokens int
}

var _ Policy = (*Weighted)(nil)

// NewWeighted returns the seed formula with its default weights.
func NewWeighted() *Weighted {
	return &Weighted{Latency: 0.4, Accuracy: 0.5, Cost: 0.1, OutTokens: 256}
}

// Name implements Policy.
func (*Weighted) Name() string { return "weighted" }

// Validate reports a negative or all-zero weight set.
func (w *Weighted) Validate() error {
	if w.Latency < 0 || w.Accuracy < 0 || w.Cost < 0 {
		return fmt.Errorf("weights must be >= 0 (latency %v, accuracy %v, cost %v)", w.Latency, w.Accuracy, w.Cost)
	}
	if w.Latency+w.Accuracy+w.Cost == 0 {
		return fmt.Errorf("weights latency, accuracy and cost are all zero")
	}
	if w.OutTokens < 0 {
		return fmt.Errorf("out_tokens %d must be >= 0", w.OutTokens)
	}
	return nil
}

// expectedCost is the request's expected price on a in dollars.
func (w *Weighted) expectedCost(f *decision.Features, a *decision.Arm) float64 {
	in := 1000
	if f != nil && f.PromptTokens > 0 {
		in = f.PromptTokens
	}
	return (float64(in)*a.PriceIn + float64(w.OutTokens)*a.PriceOut) / 1000
}

// Score writes each candidate's weighted score into scores (len >= len(cands)).
func (w *Weighted) Score(f *decision.Features, cands []decision.Arm, scores []float64) {
	const tiny = 1e-12
	k := len(cands)
	// Means of known values fill in unknown ones.
	var latSum, latN, qSum, qN float64
	for i := range cands {
		if cands[i].LatencyMS > 0 {
			latSum += cands[i].LatencyMS
			latN++
		}
		if cands[i].Quality > 0 {
			qSum += cands[i].Quality
			qN++
		}
	}
	lat := func(a *decision.Arm) float64 {
		if a.LatencyMS > 0 {
			return a.LatencyMS
		}
		return latSum / latN
	}
	// A failed request answers nothing, so the accuracy that counts is the
	// quality of an answer times the chance of getting one.
	qual := func(a *decision.Arm) float64 {
		q := qSum / qN
		if a.Quality > 0 {
			q = a.Quality
		}
		return q * (1 - math.Min(1, math.Max(0, a.ErrorRate)))
	}
	var invLatTot, qTot, invCostTot float64
	for i := range cands {
		if latN > 0 {
			invLatTot += 1 / lat(&cands[i])
		}
		if qN > 0 {
			qTot += qual(&cands[i])
		}
		invCostTot += 1 / (w.expectedCost(f, &cands[i]) + tiny)
	}
	for i := 0; i < k; i++ {
		a := &cands[i]
		s := w.Cost * (1 / (w.expectedCost(f, a) + tiny)) / invCostTot
		if latN > 0 {
			s += w.Latency * (1 / lat(a)) / invLatTot
		}
		if qN > 0 {
			s += w.Accuracy * qual(a) / qTot
		}
		scores[i] = s
	}
}

// Select implements Policy. It uses probs as scratch space for the scores.
func (w *Weighted) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	w.Score(f, cands, probs)
	best := 0
	for i := 1; i < len(cands); i++ {
		if probs[i] > probs[best] {
			best = i
		}
	}
	oneHot(probs, len(cands), best)
	return best, nil
}

// Update implements Policy; the weighted score does not learn.
func (*Weighted) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return checkUpdate(cands, chosen, reward)
}
