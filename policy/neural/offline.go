package neural

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/routelab/routelab/decision"
)

// Row is one logged decision as Fit sees it: the request's feature
// vector, the candidate arms, the chosen one, its logged propensity and
// the reward it got.
type Row struct {
	// ID names the row in errors (the request id).
	ID         string
	Vector     []float64
	Candidates []decision.Arm
	Chosen     int
	// Propensity is the logging policy's probability of the chosen arm,
	// in (0,1].
	Propensity float64
	Reward     float64
}

// Rows feeds Fit its logged rows: it calls add once per row, in order, and
// stops at add's first error, returning it. The row (and its slices) need
// only be valid during the call. offline.FitNeural adapts decision logs.
type Rows func(add func(*Row) error) error

// Weighting is how Fit corrects for the logging policy.
type Weighting int

const (
	// IPS weights each logged row by min(1/μ, Clip), μ the logged
	// propensity of the chosen arm, so the weighted rows stand for every
	// arm played equally often in every context: the regression fits each
	// arm where the logger rarely played it too, not only where it
	// usually did (covariate shift correction).
	IPS Weighting = iota
	// DR first fits the network with IPS weights (q̂), then refits it on
	// doubly robust pseudo-rewards for every candidate of every row,
	//
	//	ŷ(x, c) = q̂(x, c) + 1{c = a}·min(1/μ, Clip)·(r − q̂(x, c)),
	//
	// an unbiased target of E[r | x, c] when the propensities are right,
	// whose variance shrinks as q̂ improves.
	DR
	// Unweighted takes every logged row once, as if the policy had made
	// the logged choices itself.
	Unweighted
)

func (w Weighting) String() string {
	switch w {
	case DR:
		return "dr"
	case Unweighted:
		return "none"
	}
	return "ips"
}

// ParseWeighting is the inverse of Weighting.String.
func ParseWeighting(s string) (Weighting, error) {
	switch s {
	case "ips":
		return IPS, nil
	case "dr":
		return DR, nil
	case "none":
		return Unweighted, nil
	}
	return 0, fmt.Errorf("weighting %q: want ips, dr or none", s)
}

// FitOpts configure Fit.
type FitOpts struct {
	Weighting Weighting
	// Clip caps 1/μ; 0 means 10.
	Clip float64
	// Epochs sets each training stage's Adam steps to Epochs·rows/Batch
	// (at least the policy's Steps); 0 means 10.
	Epochs float64
}

// FitStats describe an offline fit.
type FitStats struct {
	// Rows is the number of logged decisions used, Arms the arms seen.
	Rows int
	Arms []string
	// MaxWeight and MeanWeight are over the rows' raw 1/μ; Clipped counts
	// rows whose weight was capped; ESS is (Σw)²/Σw² of the weights used.
	MaxWeight, MeanWeight, ESS float64
	Clipped                    int
	// IPS is the IPS-weighted stage (DR's first stage); Final the round
	// whose network is installed (equal to IPS unless Weighting is DR).
	// DR's Final losses are against the pseudo-rewards, whose variance
	// includes the weights': compare fits to observed rewards by IPS's.
	IPS, Final TrainStats
}

// ErrBadRecord is wrapped when a logged record cannot be trained on.
var ErrBadRecord = errors.New("bad logged record")

// Fit trains the policy offline from logged rows: the reward network
// on the logged rewards corrected for the logging policy (see Weighting),
// then every arm's regression on the new representation from the logged
// rows, which also become the replay buffer (the last Buffer of them, with
// their weights). What the policy had learnt before is replaced, starting
// from its current weights; the fitted policy then serves and keeps
// learning online. A row without a feature vector of the policy's
// dimension, with a chosen arm or propensity out of range, or with a
// non-finite reward is an error wrapping ErrBadRecord and naming it: rows
// are never skipped. Fit fails when a training round is running.
func (p *NeuralLinear) Fit(ctx context.Context, rows Rows, o FitOpts) (FitStats, error) {
	var st FitStats
	if o.Clip == 0 {
		o.Clip = 10
	}
	if o.Epochs == 0 {
		o.Epochs = 10
	}
	if !(o.Clip >= 1) || math.IsInf(o.Clip, 0) || !(o.Epochs > 0) || o.Epochs > 1e6 {
		return st, fmt.Errorf("policy %s fit: clip %v must be >= 1 and epochs %v in (0,1e6]", Name, o.Clip, o.Epochs)
	}
	if o.Weighting < IPS || o.Weighting > Unweighted {
		return st, fmt.Errorf("policy %s fit: weighting %d unknown", Name, o.Weighting)
	}
	p.mu.Lock()
	if p.training {
		p.mu.Unlock()
		return st, fmt.Errorf("policy %s fit: a training round is running", Name)
	}
	p.training = true
	dim, gen, seenStart := p.dim, p.gen, p.buf.seen
	ids := append([]string(nil), p.ids...)
	var net *mlp
	if p.net != nil {
		net = p.net.clone()
	}
	seed := p.trng.Uint64()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.training = false
		p.mu.Unlock()
	}()

	idx := make(map[string]int, len(ids))
	for i, id := range ids {
		idx[id] = i
	}
	armOf := func(id string) (int, error) {
		if i, ok := idx[id]; ok {
			return i, nil
		}
		if len(ids) >= maxArms {
			return 0, fmt.Errorf("more than %d arms", maxArms)
		}
		idx[id] = len(ids)
		ids = append(ids, id)
		return len(ids) - 1, nil
	}
	// data: the chosen arms with their weights; cands: every candidate's
	// arm per row (for DR), flat with offsets.
	data := &dataset{dim: dim}
	var raw []float64 // 1/μ per row
	var cands []int32
	var off []int
	n := 0
	err := rows(func(r *Row) error {
		i := n
		n++
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		x := r.Vector
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w %d (request %q): %s", ErrBadRecord, i, r.ID, fmt.Sprintf(format, args...))
		}
		if len(x) == 0 || len(x) > maxDim || (dim != 0 && len(x) != dim) {
			return bad("feature vector of %d dims, policy has %d", len(x), dim)
		}
		for j, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxInput {
				return bad("Vector[%d] = %v", j, v)
			}
		}
		if dim == 0 {
			dim = len(x)
			data.dim = dim
		}
		if len(r.Candidates) == 0 || r.Chosen < 0 || r.Chosen >= len(r.Candidates) {
			return bad("chosen %d of %d candidates", r.Chosen, len(r.Candidates))
		}
		mu := r.Propensity
		if !(mu > 0 && mu <= 1) {
			return bad("propensity %v of the chosen arm outside (0,1]", mu)
		}
		if math.IsNaN(r.Reward) || math.IsInf(r.Reward, 0) || math.Abs(r.Reward) > 1e100 {
			return bad("reward %v", r.Reward)
		}
		off = append(off, len(cands))
		for c := range r.Candidates {
			a, err := armOf(r.Candidates[c].ID)
			if err != nil {
				return bad("%v", err)
			}
			cands = append(cands, int32(a))
		}
		data.add(x, int(cands[off[len(off)-1]+r.Chosen]), r.Reward, 1)
		raw = append(raw, 1/mu)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("policy %s fit: %w", Name, err)
	}
	if n == 0 {
		return st, fmt.Errorf("policy %s fit: no logged records", Name)
	}
	off = append(off, len(cands))
	st.Rows, st.Arms = n, append([]string(nil), ids...)
	var sw, sw2 float64
	for i, r := range raw {
		st.MaxWeight = math.Max(st.MaxWeight, r)
		st.MeanWeight += r / float64(n)
		w := 1.0
		if o.Weighting != Unweighted {
			w = math.Min(r, o.Clip)
			if r > o.Clip {
				st.Clipped++
			}
		}
		data.w[i] = w
		sw += w
		sw2 += w * w
	}
	st.ESS = sw * sw / sw2
	// Normalise to mean 1, so the regressions count n observations.
	for i := range data.w {
		data.w[i] *= float64(n) / sw
	}

	if net == nil {
		net = newMLP(dim, p.o.Hidden, newRand(seed))
	}
	net = net.withArms(len(ids))
	to := p.trainOpts()
	to.Steps = max(to.Steps, int(math.Ceil(o.Epochs*float64(n)/float64(to.Batch))))
	rng := newRand(seed ^ 0x6a09e667f3bcc909)
	if net, st.IPS, err = train(ctx, net, data, to, rng); err != nil {
		return st, fmt.Errorf("policy %s fit: %w", Name, err)
	}
	st.Final = st.IPS
	if o.Weighting == DR {
		pseudo := &dataset{dim: dim}
		w := net.maxWidth()
		z, s1, s2 := make([]float64, net.rep()), make([]float64, w), make([]float64, w)
		for i := 0; i < n; i++ {
			x := data.row(i)
			net.forward(x, z, s1, s2)
			for _, c := range cands[off[i]:off[i+1]] {
				q := net.head(z, int(c))
				y := q
				if c == data.arm[i] {
					y += math.Min(raw[i], o.Clip) * (data.y[i] - q)
				}
				pseudo.add(x, int(c), y, 1)
			}
		}
		to.Steps = max(p.o.Steps, int(math.Ceil(o.Epochs*float64(pseudo.len())/float64(to.Batch))))
		if net, st.Final, err = train(ctx, net, pseudo, to, rng); err != nil {
			return st, fmt.Errorf("policy %s fit: DR stage: %w", Name, err)
		}
	}
	// The buffer keeps the last Buffer logged rows; the regressions are
	// built from them, as after any training round.
	if k := data.len() - p.o.Buffer; k > 0 {
		data = &dataset{dim: dim, xs: data.xs[k*dim:], arm: data.arm[k:], y: data.y[k:], w: data.w[k:]}
	}
	blr, err := rebuild(net, data, p.o.Lambda)
	if err != nil {
		return st, fmt.Errorf("policy %s fit: %w", Name, err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || (p.dim != 0 && p.dim != dim) {
		return st, fmt.Errorf("policy %s fit: the policy was restored or changed during the fit", Name)
	}
	// Rewards that arrived online during the fit (the policy may already
	// serve) are kept after the logged rows; check first that their arms
	// fit beside the log's, so that a failure changes nothing.
	online, onlineIDs := p.buf, p.ids
	late := online.since(seenStart)
	extra := map[string]bool{}
	for _, r := range late {
		id := onlineIDs[online.arm[r]]
		if _, ok := idx[id]; !ok {
			extra[id] = true
		}
	}
	if len(ids)+len(extra) > maxArms {
		return st, fmt.Errorf("policy %s fit: the log's %d arms and %d arms first seen online exceed %d", Name, len(ids), len(extra), maxArms)
	}
	p.dim, p.net, p.ids, p.idx, p.blr = dim, net, ids, idx, blr
	p.buf = newRing(p.o.Buffer, dim)
	for i := 0; i < data.len(); i++ {
		p.buf.add(data.row(i), int(data.arm[i]), data.y[i], data.w[i])
	}
	p.buf.seen = seenStart + int64(n)
	p.scratch()
	for _, r := range late {
		a, _ := p.arm(onlineIDs[online.arm[r]]) // cannot fail: checked above
		x := online.x(r)
		p.buf.add(x, a, online.y[r], online.w[r])
		p.represent(x)
		p.blr[a].update(p.phi, p.u, online.y[r], online.w[r])
	}
	p.sinceTrain = 0
	p.rounds++
	p.last = st.Final
	p.gen++
	return st, nil
}

// Predict returns the posterior mean of arm armID's reward for f and its
// standard deviation in units of the noise scale (the width UCB multiplies
// by Scale): the model's view without exploration.
func (p *NeuralLinear) Predict(f *decision.Features, armID string) (mean, sd float64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x, err := p.vector(f)
	if err != nil {
		return 0, 0, err
	}
	p.represent(x)
	mean, v := p.predict(armID)
	return mean, math.Sqrt(v), nil
}
