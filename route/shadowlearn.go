package route

import (
	"fmt"
	"math"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// ShadowLearnMode says how the shadow policy learns from requests the
// serving policy decided.
type ShadowLearnMode string

const (
	// ShadowWeighted (the default): the shadow learns off-policy from every
	// routed request, the served arm's reward weighted by
	// w = π_shadow(served arm)/π_serving(served arm), capped at MaxWeight.
	ShadowWeighted ShadowLearnMode = "weighted"
	// ShadowFrozen: the shadow never learns (an offline-trained policy is
	// then evaluated exactly as it was loaded).
	ShadowFrozen ShadowLearnMode = "frozen"
	// ShadowMatched: the shadow learns, unweighted, only from requests where
	// its choice was the served arm. Kept for comparison: the shadow then
	// sees the served arms' rewards at the serving policy's rate times its
	// own, a handicapped learner whose estimate is biased against it.
	ShadowMatched ShadowLearnMode = "matched"
)

// DefaultShadowMaxWeight caps the importance weight of a shadow update when
// ShadowLearnOpts.MaxWeight is 0.
const DefaultShadowMaxWeight = 20

// ParseShadowLearnMode reads "weighted", "frozen" or "matched"; "" is
// weighted.
func ParseShadowLearnMode(s string) (ShadowLearnMode, error) {
	switch m := ShadowLearnMode(s); m {
	case "":
		return ShadowWeighted, nil
	case ShadowWeighted, ShadowFrozen, ShadowMatched:
		return m, nil
	}
	return "", fmt.Errorf("shadow learning mode %q: want weighted, frozen or matched", s)
}

// ShadowLearnOpts configures how the shadow policy learns (CoreOpts).
//
// In weighted mode a routed request whose serving propensity of the served
// arm a is p and whose shadow probability of a is q teaches the shadow the
// reward of a with weight w = min(q/p, MaxWeight). Policies' Update takes no
// weight, so the weight is realised in one of two ways:
//
//   - a policy implementing WeightedUpdater gets UpdateWeighted(…, w);
//   - any other policy gets Update called k times, k = ⌊w⌋ + Bernoulli(w −
//     ⌊w⌋) drawn from a coin seeded by Seed, so E[k] = w. For policies whose
//     learned state is a sum over updates (counts and reward sums of
//     ε-greedy, UCB, Thompson; the Gram matrix and reward vector of the
//     linear policies) the expected state after n requests is then exactly
//     the state of the shadow trained on its own choices (Σ over requests of
//     q·E[r|a]), up to the cap: the shadow is evaluated as the learner it
//     would be if it served. Sliding-window policies see k copies in their
//     window, which shortens it in requests.
//
// The cap trades bias for variance: a request the serving policy served
// with probability 0.01 would otherwise count up to 100 times. Weights above
// the cap are rare when serving keeps a floor (w ≤ K/floor).
type ShadowLearnOpts struct {
	// Mode: "" = ShadowWeighted.
	Mode ShadowLearnMode
	// MaxWeight caps w; 0 = DefaultShadowMaxWeight. Must be ≥ 1.
	MaxWeight float64
	// Seed seeds the coin of the integer-count realisation.
	Seed uint64
}

func (o ShadowLearnOpts) validate() error {
	if _, err := ParseShadowLearnMode(string(o.Mode)); err != nil {
		return err
	}
	if o.MaxWeight != 0 && !(o.MaxWeight >= 1 && !math.IsInf(o.MaxWeight, 0)) {
		return fmt.Errorf("shadow max weight: %v must be a finite number >= 1 (0 = default %d)", o.MaxWeight, DefaultShadowMaxWeight)
	}
	return nil
}

// WeightedUpdater is implemented by policies that can learn from a reward
// with an importance weight w > 0 directly (adding w instead of 1 to their
// sufficient statistics). The shadow's weighted learning uses it when
// present; it lives here, with its only consumer.
type WeightedUpdater interface {
	UpdateWeighted(f *decision.Features, cands []decision.Arm, chosen int, reward, w float64) error
}

// ShadowWeight is the importance weight of decision d for its shadow
// policy: the shadow's probability of the served arm over the serving
// policy's. ok is false when either is unknown or the serving propensity is
// not positive.
func ShadowWeight(d *decision.Decision) (w float64, ok bool) {
	if !d.Shadow.LoggedProbKnown || d.Chosen < 0 || d.Chosen >= len(d.Probs) {
		return 0, false
	}
	p, q := d.Prob(), d.Shadow.LoggedProb
	if !(p > 0) || !(q >= 0) || math.IsInf(q, 0) {
		return 0, false
	}
	return q / p, true
}

// learnShadow teaches the shadow policy sp the reward of decision d as the
// learning mode says.
func (c *Core) learnShadow(sp policy.Policy, f *decision.Features, d *decision.Decision, reward float64) error {
	switch c.learn.Mode {
	case ShadowFrozen:
		return nil
	case ShadowMatched:
		if d.Shadow.Arm != d.Arm().ID {
			return nil
		}
		return sp.Update(f, d.Candidates, d.Chosen, reward)
	}
	w, ok := ShadowWeight(d)
	if !ok || w == 0 {
		return nil
	}
	w = min(w, c.learn.MaxWeight)
	if wu, ok := sp.(WeightedUpdater); ok {
		return wu.UpdateWeighted(f, d.Candidates, d.Chosen, reward, w)
	}
	k := int(w)
	if frac := w - float64(k); frac > 0 && c.coin() < frac {
		k++
	}
	for range k {
		if err := sp.Update(f, d.Candidates, d.Chosen, reward); err != nil {
			return err
		}
	}
	return nil
}

// coin returns a uniform draw in [0,1) from the seeded counter stream
// (splitmix64), race-free without a lock.
func (c *Core) coin() float64 {
	z := c.learn.Seed + c.learnSeq.Add(1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}
