package policy

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/routelab/routelab/decision"
)

// linBase is what the contextual policies share: a lock, the per-arm ridge
// regressions, and (for the randomised ones) a generator.
type linBase struct {
	mu  sync.Mutex
	m   *linModel
	rng prng
}

// Predict returns arm armID's estimated reward θ·x for f's vector and the
// standard deviation sqrt(xᵀA⁻¹x) of that estimate in units of the noise
// scale (the width LinUCB multiplies by alpha).
func (b *linBase) Predict(f *decision.Features, armID string) (mean, sd float64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, err := b.m.vector(f)
	if err != nil {
		return 0, 0, err
	}
	mean, v := b.m.predict(armID, x)
	return mean, math.Sqrt(v), nil
}

func (b *linBase) update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	x, err := b.m.vector(f)
	if err != nil {
		return err
	}
	b.m.update(cands[chosen].ID, x, reward)
	return nil
}

type linSnapshot struct {
	RNG   []byte   `json:"rng,omitempty"`
	Model linState `json:"model"`
}

func (b *linBase) snapshot(w io.Writer, s Spec, withRNG bool) error {
	b.mu.Lock()
	st := linSnapshot{Model: b.m.export()}
	if withRNG {
		st.RNG = b.rng.state()
	}
	b.mu.Unlock()
	return writeSnapshot(w, s, st)
}

func (b *linBase) restore(r io.Reader, s Spec, withRNG bool) error {
	var st linSnapshot
	if err := readSnapshot(r, s, &st); err != nil {
		return err
	}
	b.mu.Lock()
	cur := b.m
	b.mu.Unlock()
	m, err := cur.importLin(st.Model)
	if err != nil {
		return err
	}
	if !withRNG {
		if st.RNG != nil {
			return fmt.Errorf("%w: policy %s has no random state, snapshot has one", ErrSnapshot, s.Name)
		}
		b.mu.Lock()
		b.m = m
		b.mu.Unlock()
		return nil
	}
	pcg, err := parsePRNG(st.RNG)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	b.mu.Lock()
	b.m = m
	b.rng.set(pcg)
	b.mu.Unlock()
	return nil
}

// LinUCB is disjoint LinUCB (Li et al. 2010): one ridge regression of the
// reward on Features.Vector per arm, playing the arm maximising
//
//	θₐ·x + Alpha·sqrt(xᵀAₐ⁻¹x).
//
// Deterministic: propensities are 1/0 (wrap it in a floor for off-policy
// logs). Select costs O(K·nnz(x)²), Update O(d²) plus an O(d³)
// re-factorisation every LinearOpts.Refactor updates of an arm.
type LinUCB struct {
	alpha float64
	linBase
}

var (
	_ Policy      = (*LinUCB)(nil)
	_ Snapshotter = (*LinUCB)(nil)
)

// LinUCBOpts configures NewLinUCB. The zero value has no exploration
// bonus (greedy ridge regression) and LinearOpts' defaults.
type LinUCBOpts struct {
	// Alpha, a finite number >= 0, scales the confidence bonus; the
	// registry's "linucb" defaults to 1.
	Alpha float64
	LinearOpts
}

// NewLinUCB returns disjoint LinUCB.
func NewLinUCB(o LinUCBOpts) (*LinUCB, error) {
	if o.Alpha < 0 || !finite(o.Alpha) {
		return nil, fmt.Errorf("alpha %v must be a finite number >= 0", o.Alpha)
	}
	m, err := newLinModel("linucb", o.LinearOpts)
	if err != nil {
		return nil, err
	}
	return &LinUCB{alpha: o.Alpha, linBase: linBase{m: m}}, nil
}

// Name implements Policy.
func (*LinUCB) Name() string { return "linucb" }

// Select implements Policy.
func (p *LinUCB) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	p.mu.Lock()
	x, err := p.m.vector(f)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		mean, v := p.m.predict(cands[i].ID, x)
		if s := mean + p.alpha*math.Sqrt(v); s > bestV {
			best, bestV = i, s
		}
	}
	p.mu.Unlock()
	oneHot(probs, len(cands), best)
	return best, nil
}

// Update implements Policy.
func (p *LinUCB) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return p.update(f, cands, chosen, reward)
}

func (p *LinUCB) spec() Spec {
	return Spec{Name: "linucb", Params: p.m.o.params(Params{"alpha": ff(p.alpha)})}
}

// Snapshot implements Snapshotter.
func (p *LinUCB) Snapshot(w io.Writer) error { return p.snapshot(w, p.spec(), false) }

// Restore implements Snapshotter.
func (p *LinUCB) Restore(r io.Reader) error { return p.restore(r, p.spec(), false) }

// LinThompson is linear Thompson sampling (Agrawal & Goyal 2013) with
// disjoint per-arm ridge regressions: it draws θ̃ₐ ~ N(θₐ, V²Aₐ⁻¹) for every
// candidate and plays the arm maximising θ̃ₐ·x.
//
// Only the scalar θ̃ₐ·x enters the decision, and for a fixed x it is
// exactly distributed as N(θₐ·x, V²·xᵀAₐ⁻¹x); the arms' draws are
// independent. So the policy draws that scalar directly — one normal per
// arm instead of a d-dimensional multivariate normal — which has the same
// decision distribution as sampling θ̃ₐ through a Cholesky factor of Aₐ⁻¹
// (O(d²) per arm per Select plus an O(d³) factorisation to refresh) at the
// cost of LinUCB's Select: O(K·nnz(x)²) and K normal draws.
//
// Propensities follow Thompson: 1/0 for the winner of one draw, or with
// Draws = M > 1 each arm's share of M independent draws, playing one of the
// M winners uniformly.
type LinThompson struct {
	v     float64
	draws int
	linBase
	wins []int     // scratch for Draws > 1, guarded by mu
	buf  []float64 // scratch for Draws > 1, guarded by mu
}

var (
	_ Policy      = (*LinThompson)(nil)
	_ Snapshotter = (*LinThompson)(nil)
)

// LinThompsonOpts configures NewLinThompson. The zero value is posterior
// scale 0.25, one draw, seed 0 and LinearOpts' defaults.
type LinThompsonOpts struct {
	// V, a finite number > 0, scales the posterior covariance; 0 means 0.25.
	V float64
	// Draws per Select, in [1,4096]; 0 means 1.
	Draws int
	Seed  uint64
	LinearOpts
}

// NewLinThompson returns linear Thompson sampling.
func NewLinThompson(o LinThompsonOpts) (*LinThompson, error) {
	v, draws, seed := o.V, o.Draws, o.Seed
	if v == 0 {
		v = 0.25
	}
	if !(v > 0) || !finite(v) {
		return nil, fmt.Errorf("v %v must be a finite number > 0", v)
	}
	if draws < 0 || draws > 4096 {
		return nil, fmt.Errorf("draws %d outside [1,4096]", draws)
	}
	if draws == 0 {
		draws = 1
	}
	m, err := newLinModel("lin-thompson", o.LinearOpts)
	if err != nil {
		return nil, err
	}
	return &LinThompson{v: v, draws: draws, linBase: linBase{m: m, rng: newPRNG(seed)}}, nil
}

// Name implements Policy.
func (*LinThompson) Name() string { return "lin-thompson" }

// Select implements Policy.
func (p *LinThompson) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	p.mu.Lock()
	defer p.mu.Unlock()
	x, err := p.m.vector(f)
	if err != nil {
		return 0, err
	}
	if p.draws == 1 {
		best, bestV := 0, math.Inf(-1)
		for i := range cands {
			mean, v := p.m.predict(cands[i].ID, x)
			if s := mean + p.v*math.Sqrt(v)*p.rng.NormFloat64(); s > bestV {
				best, bestV = i, s
			}
		}
		oneHot(probs, k, best)
		return best, nil
	}
	// The posterior means and widths are the same for every draw.
	if cap(p.wins) < p.draws {
		p.wins = make([]int, p.draws)
	}
	if cap(p.buf) < 2*k {
		p.buf = make([]float64, 2*k)
	}
	wins, means, sds := p.wins[:p.draws], p.buf[:k], p.buf[k:2*k]
	for i := range cands {
		mean, v := p.m.predict(cands[i].ID, x)
		means[i], sds[i] = mean, p.v*math.Sqrt(v)
		probs[i] = 0
	}
	for r := range wins {
		best, bestV := 0, math.Inf(-1)
		for i := 0; i < k; i++ {
			if s := means[i] + sds[i]*p.rng.NormFloat64(); s > bestV {
				best, bestV = i, s
			}
		}
		wins[r] = best
		probs[best] += 1 / float64(p.draws)
	}
	return wins[p.rng.IntN(p.draws)], nil
}

// Update implements Policy.
func (p *LinThompson) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return p.update(f, cands, chosen, reward)
}

func (p *LinThompson) spec() Spec {
	return Spec{Name: "lin-thompson", Params: p.m.o.params(Params{"v": ff(p.v), "draws": strconv.Itoa(p.draws)})}
}

// Snapshot implements Snapshotter.
func (p *LinThompson) Snapshot(w io.Writer) error { return p.snapshot(w, p.spec(), true) }

// Restore implements Snapshotter.
func (p *LinThompson) Restore(r io.Reader) error { return p.restore(r, p.spec(), true) }

// EGreedyRidge is ε-greedy over per-arm ridge regressions: it plays the
// arm with the highest predicted reward θₐ·x, except with probability
// Epsilon, when it picks uniformly. Propensities are exact: Epsilon/K for
// every candidate plus 1−Epsilon on the greedy one (ties to the lowest
// index).
type EGreedyRidge struct {
	epsilon float64
	linBase
}

var (
	_ Policy      = (*EGreedyRidge)(nil)
	_ Snapshotter = (*EGreedyRidge)(nil)
)

// EGreedyRidgeOpts configures NewEGreedyRidge. The zero value is pure
// greedy ridge regression (epsilon 0), seed 0 and LinearOpts' defaults.
type EGreedyRidgeOpts struct {
	// Epsilon, in [0,1], is the probability of a uniform pick; 0 never
	// explores (the registry's "egreedy-ridge" defaults to 0.05).
	Epsilon float64
	Seed    uint64
	LinearOpts
}

// NewEGreedyRidge returns ε-greedy ridge.
func NewEGreedyRidge(o EGreedyRidgeOpts) (*EGreedyRidge, error) {
	if o.Epsilon < 0 || o.Epsilon > 1 || math.IsNaN(o.Epsilon) {
		return nil, fmt.Errorf("epsilon %v outside [0,1]", o.Epsilon)
	}
	m, err := newLinModel("egreedy-ridge", o.LinearOpts)
	if err != nil {
		return nil, err
	}
	return &EGreedyRidge{epsilon: o.Epsilon, linBase: linBase{m: m, rng: newPRNG(o.Seed)}}, nil
}

// Name implements Policy.
func (*EGreedyRidge) Name() string { return "egreedy-ridge" }

// Select implements Policy.
func (p *EGreedyRidge) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	p.mu.Lock()
	defer p.mu.Unlock()
	x, err := p.m.vector(f)
	if err != nil {
		return 0, err
	}
	g, gV := 0, math.Inf(-1)
	for i := range cands {
		if mean, _ := p.m.predict(cands[i].ID, x); mean > gV {
			g, gV = i, mean
		}
	}
	return epsilonMix(p.rng, probs, k, g, p.epsilon), nil
}

// Update implements Policy.
func (p *EGreedyRidge) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return p.update(f, cands, chosen, reward)
}

func (p *EGreedyRidge) spec() Spec {
	return Spec{Name: "egreedy-ridge", Params: p.m.o.params(Params{"epsilon": ff(p.epsilon)})}
}

// Snapshot implements Snapshotter.
func (p *EGreedyRidge) Snapshot(w io.Writer) error { return p.snapshot(w, p.spec(), true) }

// Restore implements Snapshotter.
func (p *EGreedyRidge) Restore(r io.Reader) error { return p.restore(r, p.spec(), true) }
