package offline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
)

// rowErr wraps err with the position and id of the row, as package replay
// names rows.
func rowErr(i int64, rec *decision.Record, err error) error {
	return fmt.Errorf("row %d (request %q): %w", i, rec.Request.ID, err)
}

// TrainOpts configures Train.
type TrainOpts struct {
	// Unweighted feeds every logged row to the policy once, as if the
	// policy had made the logged choices itself. By default rows are
	// importance-weighted (see Train).
	Unweighted bool
	// Clip caps the normalised weight of a row; 0 means no cap.
	Clip float64
	// Seed drives the stochastic rounding of weights to update counts.
	Seed uint64
}

// TrainStats describe a training run.
type TrainStats struct {
	// Rows read and Updates made (the sum of the rounded weights).
	Rows, Updates int64
	// MaxWeight is the largest normalised weight (after Clip).
	MaxWeight float64
	// Arms is the number of distinct chosen arms.
	Arms int
}

// Train warm-starts a learning policy from logged decisions by calling its
// Update with the logged rewards. It takes two passes over src.
//
// A logger chooses arms unevenly across contexts, so the rows of arm a
// over-represent the contexts where the logger liked a; learning from them
// as they are biases a's statistics towards those contexts. Train therefore
// weights row i (arm a_i, logged propensity μ_i) by
//
//	w_i = (1/μ_i) · n_a / Σ_{j: a_j = a} 1/μ_j
//
// — inverse propensity, normalised so that each arm's weights sum to its row
// count and a posterior's confidence reflects the data actually seen. The
// weighted rows of every arm then represent the whole logged context
// distribution: for context-free bandits the arm means become the
// population means (IPS-weighted updates); for linear policies, whose
// Update adds the row to a per-arm ridge regression, the fit becomes
// weighted least squares. Policy.Update takes no weight, so w_i is realised
// as a number of Update calls: ⌊w_i⌋ plus one more with probability w_i −
// ⌊w_i⌋ (seeded), which gives the weights in expectation.
//
// Rows are validated as for replay.Evaluate (replay.CheckRecord). The policy's own Select is never
// called, so its exploration state (random generator) is untouched.
func Train(ctx context.Context, src replay.Source, p policy.Policy, o TrainOpts) (TrainStats, error) {
	var st TrainStats
	if p == nil {
		return st, fmt.Errorf("train: nil policy")
	}
	if o.Clip < 0 || math.IsNaN(o.Clip) || math.IsInf(o.Clip, 0) {
		return st, fmt.Errorf("train: clip %v must be a finite number >= 0", o.Clip)
	}
	type armSum struct{ n, inv float64 }
	sums := map[string]*armSum{}
	var idx int64
	if !o.Unweighted {
		err := src.Scan(ctx, func(rec *decision.Record) error {
			i := idx
			idx++
			if err := replay.CheckRecord(rec); err != nil {
				return rowErr(i, rec, err)
			}
			d := &rec.Decision
			id := d.Candidates[d.Chosen].ID
			s := sums[id]
			if s == nil {
				s = &armSum{}
				sums[id] = s
			}
			s.n++
			s.inv += 1 / d.Probs[d.Chosen]
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("train (weighting pass): %w", err)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x7a11))
	chosen := map[string]bool{}
	var rows int64
	err := src.Scan(ctx, func(rec *decision.Record) error {
		i := rows
		rows++
		if i&8191 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if o.Unweighted {
			if err := replay.CheckRecord(rec); err != nil {
				return rowErr(i, rec, err)
			}
		} else if i >= idx {
			return fmt.Errorf("source yielded more rows on the second pass than the %d of the first", idx)
		}
		d := &rec.Decision
		id := d.Candidates[d.Chosen].ID
		chosen[id] = true
		w := 1.0
		if !o.Unweighted {
			s := sums[id]
			if s == nil {
				return rowErr(i, rec, fmt.Errorf("arm %q was not chosen on the first pass: the source changed", id))
			}
			w = (1 / d.Probs[d.Chosen]) * s.n / s.inv
		}
		if o.Clip > 0 {
			w = math.Min(w, o.Clip)
		}
		st.MaxWeight = math.Max(st.MaxWeight, w)
		k := int64(w)
		if rng.Float64() < w-float64(k) {
			k++
		}
		for range k {
			if err := p.Update(&rec.Request.Features, d.Candidates, d.Chosen, rec.Reward); err != nil {
				return rowErr(i, rec, fmt.Errorf("%s update: %w", p.Name(), err))
			}
		}
		st.Updates += k
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("train: %w", err)
	}
	if !o.Unweighted && rows != idx {
		return st, fmt.Errorf("train: source yielded %d rows on the second pass, %d on the first", rows, idx)
	}
	if rows == 0 {
		return st, fmt.Errorf("train: the log has no rows")
	}
	st.Rows = rows
	st.Arms = len(chosen)
	return st, nil
}
