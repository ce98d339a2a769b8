package replay

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/routelab/routelab/decision"
)

// Source yields logged decisions in order. Scan calls fn once per record
// and stops at the first error fn returns, returning it. The record is valid
// only during the call (sources reuse it). Scan may be called more than once:
// the evaluator makes two passes when it fits a reward model, and each pass
// must yield the same records in the same order.
type Source interface {
	Scan(ctx context.Context, fn func(rec *decision.Record) error) error
}

// Records is an in-memory Source.
type Records []decision.Record

// Scan implements Source.
func (rs Records) Scan(ctx context.Context, fn func(rec *decision.Record) error) error {
	for i := range rs {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(&rs[i]); err != nil {
			return err
		}
	}
	return nil
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, fn func(rec *decision.Record) error) error

// Scan implements Source.
func (f SourceFunc) Scan(ctx context.Context, fn func(rec *decision.Record) error) error {
	return f(ctx, fn)
}

// Errors for logged rows that off-policy evaluation cannot use. They are
// returned wrapped, naming the row (0-based position in the source) and its
// request id. The evaluator never skips such a row silently: one bad row
// stops the evaluation, because an estimate over a log with broken
// propensities is a wrong number, not a slightly noisier one.
var (
	// ErrMissingPropensity: the row has no propensity for some candidate
	// (fewer probabilities than candidates, or none at all).
	ErrMissingPropensity = errors.New("missing propensities")
	// ErrZeroPropensity: the logged probability of the chosen arm is 0 (or
	// below 1e-12), which no correct logger can produce; importance weights
	// would be infinite.
	ErrZeroPropensity = errors.New("zero propensity on the chosen arm")
	// ErrBadPropensity: a propensity is NaN or outside [0,1], or they do
	// not sum to 1.
	ErrBadPropensity = errors.New("invalid propensities")
	// ErrBadRow: no candidates, chosen index out of range, duplicate arm
	// ids, or a reward that is NaN or outside [0,1].
	ErrBadRow = errors.New("malformed logged row")
	// ErrTarget: the target policy failed on a logged row (its Select
	// returned an error, e.g. an arm or feature vector it cannot handle,
	// or its propensities are invalid).
	ErrTarget = errors.New("target policy failed")
)

// probSumTol is how far logged propensities may sum from 1. Logs store
// float64, but a writer may round (float32 columns): 1e-5 admits rounding
// of up to ~100 candidates and rejects any real error.
const probSumTol = 1e-5

// minPropensity is the smallest logged propensity of a chosen arm taken as
// non-zero. Below it the importance weight (up to 10¹² here) would swamp
// any estimate and its square overflow; no real logger explores that
// rarely, so such a value is a logging bug.
const minPropensity = 1e-12

// rowErr wraps err with the position and id of the row.
func rowErr(i int64, rec *decision.Record, err error) error {
	return fmt.Errorf("row %d (request %q): %w", i, rec.Request.ID, err)
}

// CheckRecord validates the logged side of rec — the things every
// estimator relies on — and returns an error wrapping ErrBadRow,
// ErrMissingPropensity, ErrZeroPropensity or ErrBadPropensity. Offline
// learners (package offline) validate their rows with it too.
func CheckRecord(rec *decision.Record) error { return checkRecord(rec) }

// checkRecord is CheckRecord.
func checkRecord(rec *decision.Record) error {
	d := &rec.Decision
	k := len(d.Candidates)
	if k == 0 {
		return fmt.Errorf("%w: no candidates", ErrBadRow)
	}
	if len(d.Probs) == 0 {
		return fmt.Errorf("%w: none logged for %d candidates", ErrMissingPropensity, k)
	}
	if len(d.Probs) != k {
		return fmt.Errorf("%w: %d propensities for %d candidates", ErrMissingPropensity, len(d.Probs), k)
	}
	if d.Chosen < 0 || d.Chosen >= k {
		return fmt.Errorf("%w: chosen index %d of %d candidates", ErrBadRow, d.Chosen, k)
	}
	// Rewards live in [0,1] (decision.Outcome.Reward); one outside it (or
	// NaN) is a logging bug, and a huge one would make ips infinite.
	if !(rec.Reward >= 0 && rec.Reward <= 1) {
		return fmt.Errorf("%w: reward %v outside [0,1]", ErrBadRow, rec.Reward)
	}
	if err := checkProbs(d.Probs); err != nil {
		return err
	}
	if d.Probs[d.Chosen] < minPropensity {
		return fmt.Errorf("%w: arm %q has propensity %v", ErrZeroPropensity, d.Candidates[d.Chosen].ID, d.Probs[d.Chosen])
	}
	// Candidate sets are small; a quadratic duplicate check beats a map.
	for i := 1; i < k; i++ {
		for j := 0; j < i; j++ {
			if d.Candidates[i].ID == d.Candidates[j].ID {
				return fmt.Errorf("%w: arm %q listed twice among the candidates", ErrBadRow, d.Candidates[i].ID)
			}
		}
	}
	return nil
}

// checkProbs validates a probability vector over candidates.
func checkProbs(p []float64) error {
	sum := 0.0
	for i, v := range p {
		if math.IsNaN(v) || v < 0 || v > 1+probSumTol {
			return fmt.Errorf("%w: probability %v of candidate %d", ErrBadPropensity, v, i)
		}
		sum += v
	}
	if math.Abs(sum-1) > probSumTol {
		return fmt.Errorf("%w: probabilities sum to %v, not 1", ErrBadPropensity, sum)
	}
	return nil
}
