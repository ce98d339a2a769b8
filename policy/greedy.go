package policy

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/routelab/routelab/decision"
)

// EpsilonGreedy plays the arm with the best mean reward, except with
// probability Epsilon, when it picks uniformly. Every candidate therefore has
// probability at least Epsilon/K, and the reported propensities are exact.
type EpsilonGreedy struct {
	epsilon float64
	mu      sync.Mutex
	rng     prng
	arms    armTable
}

var _ Policy = (*EpsilonGreedy)(nil)

// EpsilonGreedyOpts configures NewEpsilonGreedy. The zero value is pure
// greedy (epsilon 0), seed 0.
type EpsilonGreedyOpts struct {
	// Epsilon, in [0,1], is the probability of a uniform pick; 0 never
	// explores (the registry's "epsilon-greedy" defaults to 0.1).
	Epsilon float64
	Seed    uint64
}

// NewEpsilonGreedy returns an ε-greedy policy.
func NewEpsilonGreedy(o EpsilonGreedyOpts) (*EpsilonGreedy, error) {
	if o.Epsilon < 0 || o.Epsilon > 1 || math.IsNaN(o.Epsilon) {
		return nil, fmt.Errorf("epsilon %v outside [0,1]", o.Epsilon)
	}
	return &EpsilonGreedy{epsilon: o.Epsilon, rng: newPRNG(o.Seed), arms: newArmTable()}, nil
}

// Name implements Policy.
func (*EpsilonGreedy) Name() string { return "epsilon-greedy" }

// Select implements Policy.
func (p *EpsilonGreedy) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	p.mu.Lock()
	defer p.mu.Unlock()
	return epsilonMix(p.rng, probs, k, p.arms.greedy(cands), p.epsilon), nil
}

// Update implements Policy.
func (p *EpsilonGreedy) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	p.mu.Lock()
	p.arms.record(cands[chosen].ID, reward)
	p.mu.Unlock()
	return nil
}

// UCB1 plays the arm maximising mean + C·sqrt(2 ln N / n) (Auer et al.
// 2002), where N counts the rewards of the current candidates. Unseen arms
// are played first. It is deterministic: propensities are 1/0, so wrap it
// in an exploration floor before using its logs for off-policy evaluation.
type UCB1 struct {
	c    float64
	mu   sync.Mutex
	arms armTable
}

var _ Policy = (*UCB1)(nil)

// UCB1Opts configures NewUCB1. The zero value has no exploration bonus
// (greedy on the means, unseen arms first).
type UCB1Opts struct {
	// C, a finite number >= 0, scales the exploration bonus; 1 suits
	// rewards in [0,1] and is the registry's "ucb1" default.
	C float64
}

// NewUCB1 returns UCB1.
func NewUCB1(o UCB1Opts) (*UCB1, error) {
	if o.C < 0 || math.IsNaN(o.C) || math.IsInf(o.C, 0) {
		return nil, fmt.Errorf("c %v must be a finite number >= 0", o.C)
	}
	return &UCB1{c: o.C, arms: newArmTable()}, nil
}

// Name implements Policy.
func (*UCB1) Name() string { return "ucb1" }

// Select implements Policy.
func (p *UCB1) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var total float64
	for i := range cands {
		total += p.arms.get(cands[i].ID).n
	}
	logN := math.Log(math.Max(total, 1))
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		s := p.arms.get(cands[i].ID)
		if s.n == 0 {
			best = i
			break
		}
		v := s.mean() + p.c*math.Sqrt(2*logN/s.n)
		if v > bestV {
			best, bestV = i, v
		}
	}
	oneHot(probs, len(cands), best)
	return best, nil
}

// Update implements Policy.
func (p *UCB1) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	p.mu.Lock()
	p.arms.record(cands[chosen].ID, reward)
	p.mu.Unlock()
	return nil
}
