package policy

import (
	"context"
	"sync"

	"github.com/routelab/routelab/decision"
)

// Random picks uniformly among the candidates. It is the baseline every
// learning policy must beat, and a safe logging policy for off-policy
// evaluation (every arm has probability 1/K).
type Random struct {
	mu  sync.Mutex
	rng prng
}

var _ Policy = (*Random)(nil)

// RandomOpts configures NewRandom. The zero value is seed 0.
type RandomOpts struct {
	// Seed seeds the policy's own random stream.
	Seed uint64
}

// NewRandom returns a uniform policy drawing from its own stream.
func NewRandom(o RandomOpts) *Random { return &Random{rng: newPRNG(o.Seed)} }

// Name implements Policy.
func (*Random) Name() string { return "random" }

// Select implements Policy.
func (p *Random) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	for i := 0; i < k; i++ {
		probs[i] = 1 / float64(k)
	}
	p.mu.Lock()
	c := p.rng.IntN(k)
	p.mu.Unlock()
	return c, nil
}

// Update implements Policy; Random does not learn.
func (*Random) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return checkUpdate(cands, chosen, reward)
}
