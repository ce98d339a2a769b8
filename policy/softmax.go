package policy

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/routelab/routelab/decision"
)

// Softmax is Boltzmann exploration: candidate i is played with probability
// proportional to exp(mean_i / Temperature), where mean_i is its mean reward
// (Init for arms without a reward yet). The reported propensities are
// exactly the probabilities it samples from, so its logs serve off-policy
// evaluation directly. A low temperature is nearly greedy; a high one
// nearly uniform.
type Softmax struct {
	temp, init float64

	mu   sync.Mutex
	rng  prng
	arms armTable
}

var (
	_ Policy      = (*Softmax)(nil)
	_ Snapshotter = (*Softmax)(nil)
)

// SoftmaxOpts configures NewSoftmax. The zero value is temperature 0.1,
// unseen arms valued 0, seed 0.
type SoftmaxOpts struct {
	// Temperature, a finite number > 0, scales the means before the
	// exponential; 0 means 0.1.
	Temperature float64
	// Init is the value of an arm without a reward yet; 0 is pessimistic
	// (the registry's "softmax" defaults to an optimistic 1).
	Init float64
	Seed uint64
}

// NewSoftmax returns a Boltzmann policy.
func NewSoftmax(o SoftmaxOpts) (*Softmax, error) {
	if o.Temperature == 0 {
		o.Temperature = 0.1
	}
	if !(o.Temperature > 0) || !finite(o.Temperature) {
		return nil, fmt.Errorf("temperature %v must be a finite number > 0", o.Temperature)
	}
	if !finite(o.Init) {
		return nil, fmt.Errorf("init %v must be finite", o.Init)
	}
	return &Softmax{temp: o.Temperature, init: o.Init, rng: newPRNG(o.Seed), arms: newArmTable()}, nil
}

// Name implements Policy.
func (*Softmax) Name() string { return "softmax" }

// Select implements Policy.
func (p *Softmax) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	p.mu.Lock()
	defer p.mu.Unlock()
	hi := math.Inf(-1)
	for i := range cands {
		v := p.init
		if s := p.arms.get(cands[i].ID); s.n > 0 {
			v = s.mean()
		}
		probs[i] = v
		hi = math.Max(hi, v)
	}
	// Subtracting the maximum before dividing keeps every exponent in
	// [-Inf, 0] whatever the temperature: the best arm weighs exactly 1.
	var sum float64
	for i := 0; i < k; i++ {
		probs[i] = math.Exp((probs[i] - hi) / p.temp)
		sum += probs[i]
	}
	for i := 0; i < k; i++ {
		probs[i] /= sum
	}
	return sampleProbs(p.rng.Float64(), probs[:k]), nil
}

// sampleProbs returns the index whose cumulative probability first exceeds
// u in [0,1). Rounding can leave the total a hair below u; the last index
// with positive probability then wins.
func sampleProbs(u float64, probs []float64) int {
	var acc float64
	last := 0
	for i, q := range probs {
		if q <= 0 {
			continue
		}
		acc += q
		last = i
		if u < acc {
			return i
		}
	}
	return last
}

// Update implements Policy.
func (p *Softmax) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	p.mu.Lock()
	p.arms.record(cands[chosen].ID, reward)
	p.mu.Unlock()
	return nil
}

func (p *Softmax) spec() Spec {
	return Spec{Name: "softmax", Params: Params{"temperature": ff(p.temp), "init": ff(p.init)}}
}

// Snapshot implements Snapshotter.
func (p *Softmax) Snapshot(w io.Writer) error {
	return snapshotArms(w, p.spec(), &p.mu, &p.rng, &p.arms)
}

// Restore implements Snapshotter.
func (p *Softmax) Restore(r io.Reader) error {
	return restoreArms(r, p.spec(), &p.mu, &p.rng, &p.arms, nil)
}
