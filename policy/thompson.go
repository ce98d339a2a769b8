package policy

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/routelab/routelab/decision"
)

// ThompsonModel is the reward model of a Thompson sampler.
type ThompsonModel int

const (
	// BetaModel is Beta-Bernoulli for success-like rewards in [0,1]: a
	// reward r adds r to α and 1−r to β (fractional updates).
	BetaModel ThompsonModel = iota
	// GaussianModel is a Normal posterior on the mean of a continuous reward.
	GaussianModel
)

func (m ThompsonModel) String() string {
	if m == GaussianModel {
		return "gaussian"
	}
	return "beta"
}

// Thompson samples a plausible mean for every candidate from its posterior
// and plays the best sample (Thompson 1933; Agrawal & Goyal 2012).
//
// Propensities: with Draws = 1 the policy reports 1 for the arm whose
// sample won and 0 elsewhere — the exact probability given its internal
// draw, which is what off-policy estimators need once an exploration floor
// guarantees support. With Draws = M > 1 it draws M posterior samples per
// arm, reports each arm's share of the M wins, and plays one of the M winners
// uniformly, so the reported propensities are exact and smoother.
//
// Discounted Thompson (NewDiscountedThompson, "d-thompson") multiplies every
// arm's statistics by Gamma before adding each new reward (Raj & Kalyani
// 2017), so evidence older than about 1/(1−Gamma) rewards fades and the
// posterior widens again for arms that stopped being played.
type Thompson struct {
	name  string
	model ThompsonModel
	draws int
	gamma float64 // 1 = stationary
	// prior variance of the Gaussian model's mean; also the noise scale.
	sigma2 float64

	mu   sync.Mutex
	rng  prng
	arms armTable
	wins []int // scratch for Draws > 1, guarded by mu
}

var (
	_ Policy      = (*Thompson)(nil)
	_ Snapshotter = (*Thompson)(nil)
)

// ThompsonOpts configures NewThompson. The zero value is Beta with one draw.
type ThompsonOpts struct {
	Model ThompsonModel
	// Draws per Select; 0 means 1.
	Draws int
	// Sigma is the Gaussian model's reward noise scale; 0 means 0.5.
	Sigma float64
	// Gamma is the discount of NewDiscountedThompson, in (0,1]; 0 means
	// 0.999 there. NewThompson accepts only 0 or 1.
	Gamma float64
	Seed  uint64
}

// NewThompson returns a stationary Thompson sampler.
func NewThompson(o ThompsonOpts) (*Thompson, error) {
	if o.Gamma != 0 && o.Gamma != 1 {
		return nil, fmt.Errorf("gamma %v: the stationary sampler has no discount (use NewDiscountedThompson)", o.Gamma)
	}
	o.Gamma = 1
	return newThompson("thompson", o)
}

// NewDiscountedThompson returns a Thompson sampler whose statistics decay by
// o.Gamma per reward received.
func NewDiscountedThompson(o ThompsonOpts) (*Thompson, error) {
	if o.Gamma == 0 {
		o.Gamma = 0.999
	}
	if !(o.Gamma > 0 && o.Gamma <= 1) {
		return nil, fmt.Errorf("gamma %v outside (0,1]", o.Gamma)
	}
	return newThompson("d-thompson", o)
}

func newThompson(name string, o ThompsonOpts) (*Thompson, error) {
	if o.Draws < 0 || o.Draws > 4096 {
		return nil, fmt.Errorf("draws %d outside [1,4096]", o.Draws)
	}
	if o.Draws == 0 {
		o.Draws = 1
	}
	if o.Sigma < 0 || math.IsNaN(o.Sigma) || math.IsInf(o.Sigma, 0) {
		return nil, fmt.Errorf("sigma %v must be a finite number > 0", o.Sigma)
	}
	if o.Sigma == 0 {
		o.Sigma = 0.5
	}
	if o.Model != BetaModel && o.Model != GaussianModel {
		return nil, fmt.Errorf("unknown model %d", o.Model)
	}
	return &Thompson{name: name, model: o.Model, draws: o.Draws, gamma: o.Gamma, sigma2: o.Sigma * o.Sigma, rng: newPRNG(o.Seed), arms: newArmTable()}, nil
}

// Name implements Policy.
func (p *Thompson) Name() string { return p.name }

// sample draws one plausible mean for arm statistics s. Callers hold mu.
func (p *Thompson) sample(s armStats) float64 {
	if p.model == BetaModel {
		return betaRand(p.rng.Rand, 1+s.sum, 1+s.n-s.sum)
	}
	// Normal prior N(0.5, σ²) on the mean, known noise σ²: the posterior
	// precision is (1+n)/σ².
	mean := (0.5 + s.sum) / (1 + s.n)
	return mean + p.rng.NormFloat64()*math.Sqrt(p.sigma2/(1+s.n))
}

// Select implements Policy.
func (p *Thompson) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draws == 1 {
		best := p.argmaxSample(cands)
		oneHot(probs, k, best)
		return best, nil
	}
	if cap(p.wins) < p.draws {
		p.wins = make([]int, p.draws)
	}
	wins := p.wins[:p.draws]
	for i := 0; i < k; i++ {
		probs[i] = 0
	}
	for m := range wins {
		w := p.argmaxSample(cands)
		wins[m] = w
		probs[w] += 1 / float64(p.draws)
	}
	return wins[p.rng.IntN(p.draws)], nil
}

func (p *Thompson) argmaxSample(cands []decision.Arm) int {
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		if v := p.sample(p.arms.get(cands[i].ID)); v > bestV {
			best, bestV = i, v
		}
	}
	return best
}

// Update implements Policy. The Beta model rejects rewards outside [0,1].
func (p *Thompson) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	if p.model == BetaModel && (reward < 0 || reward > 1) {
		return fmt.Errorf("%w: beta model needs a reward in [0,1], got %v for arm %q", ErrBadReward, reward, cands[chosen].ID)
	}
	p.mu.Lock()
	if p.gamma < 1 {
		p.arms.discount(p.gamma)
	}
	p.arms.record(cands[chosen].ID, reward)
	p.mu.Unlock()
	return nil
}

func (p *Thompson) spec() Spec {
	ps := Params{"model": p.model.String(), "draws": fmt.Sprint(p.draws), "sigma": ff(math.Sqrt(p.sigma2))}
	if p.name == "d-thompson" {
		ps["gamma"] = ff(p.gamma)
	}
	return Spec{Name: p.name, Params: ps}
}

// checkArm rejects restored statistics whose Beta posterior is improper.
func (p *Thompson) checkArm(s armStats) error {
	if p.model == BetaModel && (1+s.sum <= 0 || 1+s.n-s.sum <= 0) {
		return fmt.Errorf("beta posterior (%v, %v) not positive", 1+s.sum, 1+s.n-s.sum)
	}
	return nil
}

// Snapshot implements Snapshotter.
func (p *Thompson) Snapshot(w io.Writer) error {
	return snapshotArms(w, p.spec(), &p.mu, &p.rng, &p.arms)
}

// Restore implements Snapshotter.
func (p *Thompson) Restore(r io.Reader) error {
	return restoreArms(r, p.spec(), &p.mu, &p.rng, &p.arms, p.checkArm)
}
