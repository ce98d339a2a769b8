package offline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/policy/neural"
	"github.com/routelab/routelab/replay"
)

// RouterLearners name FitRouter's weightings for command lines:
// ridge-ips, ridge-dr and ridge-dm (unweighted, the direct method).
var RouterLearners = map[string]neural.Weighting{"ridge-ips": neural.IPS, "ridge-dr": neural.DR, "ridge-dm": neural.Unweighted}

// RouterOpts configures FitRouter.
type RouterOpts struct {
	// Weighting corrects for the logging policy (see FitRouter):
	// neural.IPS, neural.DR or neural.Unweighted (the direct method).
	Weighting neural.Weighting
	// L2 is the ridge penalty: each regression minimises the (weighted)
	// mean squared error/2 plus L2/2·|θ|². 0 means 0.01.
	L2 float64
	// Clip caps the inverse propensity 1/μ; 0 means no cap.
	Clip float64
	// Catalogue, when set, lists the arms the router may serve: a logged
	// candidate outside it is an error. Empty means the arms in the log.
	Catalogue []string
	// Router sets the served router's Lambda, Budget and Eta (Dim and
	// Arms are filled in). Lambda is added to the cost term the logged
	// reward already has, so leave it 0 to maximise the logged reward.
	Router policy.LinearRouterOpts
}

// RouterStats describe a FitRouter run.
type RouterStats struct {
	// Rows is the number of logged decisions used; Dim their vector length.
	Rows, Dim int
	// Arms are the arms of the router, in catalogue (or first-seen) order;
	// Chosen[i] counts the rows that chose Arms[i].
	Arms   []string
	Chosen []int
	// Unfitted are catalogue arms no row chose: they have no data and are
	// left out of the router (which never picks an arm it does not know).
	Unfitted []string
	// MaxWeight is the largest raw 1/μ; Clipped counts rows capped by Clip;
	// ESS is (Σw)²/Σw² of the weights used (the rows for Unweighted).
	MaxWeight, ESS float64
	Clipped        int
}

// ErrBadLog is wrapped by FitRouter's errors about the log's content.
var ErrBadLog = errors.New("bad decision log")

// loggedRow is one logged decision as FitRouter keeps it.
type loggedRow struct {
	x      sparse
	cands  []int32 // arm indices of the candidates
	chosen int32   // arm index of the chosen candidate
	w      float64 // min(1/μ, Clip)
	reward float64
	cost   float64
}

// sparse is a feature vector's non-zero entries.
type sparse struct {
	idx []int32
	val []float64
}

func (s sparse) dot(w []float64) float64 {
	v := 0.0
	for j, i := range s.idx {
		v += s.val[j] * w[i]
	}
	return v
}

// FitRouter fits, from logged decisions only (bandit feedback: the reward
// of the chosen arm, its cost and the logged propensity μ of the choice),
// one ridge regression per arm of the logged reward on the logged feature
// vector, and another of the cost, and returns them as a
// policy.LinearRouter, which picks argmax predicted reward − Lambda·cost.
//
// The logger chose arms unevenly across contexts, so a regression on the
// rows that chose arm a alone fits a best where the logger liked a; where
// the features do not capture why the logger chose it, the fit is biased.
// The weightings correct for this:
//
//	neural.Unweighted  direct method (DM): arm a's rows, each counted once
//	neural.IPS         arm a's rows weighted by w = min(1/μ, Clip)
//	                   (normalised to mean 1 per arm), so they stand for the
//	                   whole logged context distribution
//	neural.DR          doubly robust: first the DM fit q̂, then, for every
//	                   candidate c of every row, the pseudo-outcome
//	                   q̂_c(x) + 1{c = a}·w·(y − q̂_c(x)) — unbiased for
//	                   E[y | x, c] when the propensities are right, with
//	                   less variance than IPS when q̂ is good — regressed
//	                   per arm over all rows
//
// Rows are validated with replay.CheckRecord (propensities present, the
// chosen one > 0, rewards in [0,1]); vectors must be non-empty, finite and
// of one length; with a Catalogue every candidate must be in it. Errors
// name the row and wrap ErrBadLog (or the replay error). Regressions are
// solved exactly (conjugate gradients on the normal equations), so the
// fit is deterministic.
func FitRouter(ctx context.Context, src replay.Source, o RouterOpts) (*policy.LinearRouter, RouterStats, error) {
	var st RouterStats
	if o.L2 == 0 {
		o.L2 = 0.01
	}
	if !(o.L2 > 0) || math.IsInf(o.L2, 1) {
		return nil, st, fmt.Errorf("fit router: l2 %v must be a finite number > 0", o.L2)
	}
	if !(o.Clip >= 0) || math.IsInf(o.Clip, 1) {
		return nil, st, fmt.Errorf("fit router: clip %v must be a finite number >= 0", o.Clip)
	}
	if o.Weighting < neural.IPS || o.Weighting > neural.Unweighted {
		return nil, st, fmt.Errorf("fit router: weighting %d unknown", o.Weighting)
	}
	if src == nil {
		return nil, st, fmt.Errorf("fit router: nil source")
	}
	armIdx := map[string]int{}
	var ids []string
	for _, id := range o.Catalogue {
		if _, dup := armIdx[id]; dup {
			return nil, st, fmt.Errorf("fit router: catalogue lists arm %q twice", id)
		}
		armIdx[id] = len(ids)
		ids = append(ids, id)
	}
	var rows []loggedRow
	dim := 0
	var i int64
	err := src.Scan(ctx, func(rec *decision.Record) error {
		n := i
		i++
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		bad := func(format string, args ...any) error {
			return rowErr(n, rec, fmt.Errorf("%w: %s", ErrBadLog, fmt.Sprintf(format, args...)))
		}
		if err := replay.CheckRecord(rec); err != nil {
			return rowErr(n, rec, err)
		}
		x := rec.Request.Features.Vector
		if len(x) == 0 {
			return bad("no feature vector (the log was written without an encoder)")
		}
		if dim == 0 {
			dim = len(x)
		} else if len(x) != dim {
			return bad("feature vector of %d slots, earlier rows have %d", len(x), dim)
		}
		var r loggedRow
		for j, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return bad("Vector[%d] = %v", j, v)
			}
			if v != 0 {
				r.x.idx = append(r.x.idx, int32(j))
				r.x.val = append(r.x.val, v)
			}
		}
		d := &rec.Decision
		for _, c := range d.Candidates {
			a, ok := armIdx[c.ID]
			if !ok {
				if len(o.Catalogue) > 0 {
					return bad("candidate arm %q is not in the catalogue %v", c.ID, o.Catalogue)
				}
				a = len(ids)
				armIdx[c.ID] = a
				ids = append(ids, c.ID)
			}
			r.cands = append(r.cands, int32(a))
		}
		r.chosen = r.cands[d.Chosen]
		cost := rec.Outcome.Cost
		if !(cost >= 0) || math.IsInf(cost, 1) {
			return bad("cost %v", cost)
		}
		inv := 1 / d.Probs[d.Chosen]
		st.MaxWeight = max(st.MaxWeight, inv)
		r.w = inv
		if o.Clip > 0 && inv > o.Clip {
			r.w = o.Clip
			st.Clipped++
		}
		r.reward, r.cost = rec.Reward, cost
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("fit router: %w", err)
	}
	if len(rows) == 0 {
		return nil, st, fmt.Errorf("fit router: %w: no rows", ErrBadLog)
	}
	st.Rows, st.Dim = len(rows), dim
	k := len(ids)
	chosen := make([]int, k)
	var sw, sw2 float64
	for _, r := range rows {
		chosen[r.chosen]++
		w := r.w
		if o.Weighting == neural.Unweighted {
			w = 1
		}
		sw += w
		sw2 += w * w
	}
	st.ESS = sw * sw / sw2

	// Costs are about 1e-4..1e-2 dollars: fit them in thousandths so the
	// penalty does not swamp them, then scale the weights back (as
	// datasets.FitRouter does).
	const costScale = 1000
	quality := fitArms(rows, k, dim, o.Weighting, o.L2, func(r *loggedRow) float64 { return r.reward })
	cost := fitArms(rows, k, dim, o.Weighting, o.L2, func(r *loggedRow) float64 { return r.cost * costScale })
	var arms []policy.RouterArm
	for a, id := range ids {
		if chosen[a] == 0 {
			st.Unfitted = append(st.Unfitted, id)
			continue
		}
		cw := cost[a]
		for j := range cw {
			cw[j] /= costScale
		}
		arms = append(arms, policy.RouterArm{ID: id, Quality: quality[a], Cost: cw})
		st.Arms = append(st.Arms, id)
		st.Chosen = append(st.Chosen, chosen[a])
	}
	ro := o.Router
	ro.Dim, ro.Arms = dim, arms
	p, err := policy.NewLinearRouter(ro)
	if err != nil {
		return nil, st, fmt.Errorf("fit router: %w", err)
	}
	return p, st, nil
}

// fitArms fits, per arm, the ridge regression of target under weighting
// (see FitRouter) and returns the weights (nil for arms no row chose).
func fitArms(rows []loggedRow, k, dim int, wt neural.Weighting, l2 float64, target func(*loggedRow) float64) [][]float64 {
	out := make([][]float64, k)
	// Direct method / IPS: per arm, the rows that chose it.
	byArm := make([][]int, k)
	for i := range rows {
		byArm[rows[i].chosen] = append(byArm[rows[i].chosen], i)
	}
	for a := range k {
		if len(byArm[a]) == 0 {
			continue
		}
		xs := make([]sparse, len(byArm[a]))
		ys := make([]float64, len(byArm[a]))
		ws := make([]float64, len(byArm[a]))
		for j, i := range byArm[a] {
			xs[j], ys[j], ws[j] = rows[i].x, target(&rows[i]), 1
			if wt == neural.IPS {
				ws[j] = rows[i].w
			}
		}
		out[a] = ridge(xs, ys, ws, dim, l2)
	}
	if wt != neural.DR {
		return out
	}
	// DR: pseudo-outcomes for every candidate of every row around the
	// direct-method fit, with the raw (clipped) weights.
	dm := out
	out = make([][]float64, k)
	xs := make([][]sparse, k)
	ys := make([][]float64, k)
	for i := range rows {
		r := &rows[i]
		for _, c := range r.cands {
			if dm[c] == nil {
				continue // no direct-method fit: the arm gets no model
			}
			q := r.x.dot(dm[c])
			y := q
			if c == r.chosen {
				y += r.w * (target(r) - q)
			}
			xs[c] = append(xs[c], r.x)
			ys[c] = append(ys[c], y)
		}
	}
	for a := range k {
		if len(xs[a]) == 0 {
			continue
		}
		ws := make([]float64, len(xs[a]))
		for j := range ws {
			ws[j] = 1
		}
		out[a] = ridge(xs[a], ys[a], ws, dim, l2)
	}
	return out
}

// ridge solves min_θ Σ w_i (y_i − θ·x_i)² / (2 Σ w) + l2/2·|θ|² by
// conjugate gradients on the normal equations (XᵀWX/Σw + l2·I)θ =
// XᵀWy/Σw, a symmetric positive definite system: exact after at most dim
// steps, stopped when the residual is below 1e-10 of the right-hand side's.
func ridge(xs []sparse, ys, ws []float64, dim int, l2 float64) []float64 {
	sw := 0.0
	for _, w := range ws {
		sw += w
	}
	apply := func(v, out []float64) {
		for j := range out {
			out[j] = l2 * v[j]
		}
		for i, x := range xs {
			s := x.dot(v) * ws[i] / sw
			for n, j := range x.idx {
				out[j] += s * x.val[n]
			}
		}
	}
	b := make([]float64, dim)
	for i, x := range xs {
		s := ys[i] * ws[i] / sw
		for n, j := range x.idx {
			b[j] += s * x.val[n]
		}
	}
	theta := make([]float64, dim)
	r := slices.Clone(b)
	p := slices.Clone(b)
	ap := make([]float64, dim)
	dot := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	rr := dot(r, r)
	tol := 1e-20 * max(rr, 1e-300)
	for it := 0; it < 2*dim+100 && rr > tol; it++ {
		apply(p, ap)
		alpha := rr / dot(p, ap)
		for j := range theta {
			theta[j] += alpha * p[j]
			r[j] -= alpha * ap[j]
		}
		rn := dot(r, r)
		for j := range p {
			p[j] = r[j] + rn/rr*p[j]
		}
		rr = rn
	}
	return theta
}
