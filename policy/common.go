package policy

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/routelab/routelab/decision"
)

// checkSelect validates the arguments every Select receives.
func checkSelect(cands []decision.Arm, probs []float64) error {
	if len(cands) == 0 {
		return ErrNoCandidates
	}
	if len(probs) < len(cands) {
		return fmt.Errorf("%w: %d probs for %d candidates", ErrProbsTooShort, len(probs), len(cands))
	}
	return nil
}

// maxMagnitude bounds rewards and feature values: squares and sums of
// larger numbers could overflow the statistics to Inf, which would corrupt
// a policy silently.
const maxMagnitude = 1e100

// checkUpdate validates the arguments every Update receives.
func checkUpdate(cands []decision.Arm, chosen int, reward float64) error {
	if len(cands) == 0 {
		return ErrNoCandidates
	}
	if chosen < 0 || chosen >= len(cands) {
		return fmt.Errorf("%w: %d of %d candidates", ErrBadChosen, chosen, len(cands))
	}
	if math.IsNaN(reward) || math.IsInf(reward, 0) || math.Abs(reward) > maxMagnitude {
		return fmt.Errorf("%w: %v for arm %q", ErrBadReward, reward, cands[chosen].ID)
	}
	return nil
}

// prng is a policy's own generator. Every policy owns one; there is no
// package-level random state. Its state can be saved and restored, so a
// restored policy continues the very same random stream.
type prng struct {
	src *rand.PCG
	*rand.Rand
}

// newPRNG returns a generator seeded from seed.
func newPRNG(seed uint64) prng {
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return prng{src: src, Rand: rand.New(src)}
}

// state returns the generator's state (PCG's binary encoding).
func (g prng) state() []byte {
	b, err := g.src.MarshalBinary()
	if err != nil {
		// PCG's MarshalBinary cannot fail; keep the invariant visible.
		return nil
	}
	return b
}

// parsePRNG decodes a state saved by state, without touching g.
func parsePRNG(b []byte) (rand.PCG, error) {
	var pcg rand.PCG
	if err := pcg.UnmarshalBinary(b); err != nil {
		return pcg, fmt.Errorf("rng state: %w", err)
	}
	return pcg, nil
}

// set installs a state parsed by parsePRNG. Callers hold the owner's lock.
func (g prng) set(pcg rand.PCG) { *g.src = pcg }

// epsilonMix writes the ε-greedy propensities — ε/K everywhere plus 1−ε on
// the greedy arm g — into probs and draws the choice from them. Callers hold
// the lock guarding rng.
func epsilonMix(rng prng, probs []float64, k, g int, eps float64) int {
	for i := 0; i < k; i++ {
		probs[i] = eps / float64(k)
	}
	probs[g] += 1 - eps
	if rng.Float64() < eps {
		return rng.IntN(k)
	}
	return g
}

// oneHot writes a deterministic choice into probs.
func oneHot(probs []float64, k, chosen int) {
	for i := 0; i < k; i++ {
		probs[i] = 0
	}
	probs[chosen] = 1
}

// armStats are running reward statistics for one arm.
type armStats struct {
	n     float64 // number of (possibly weighted) rewards seen
	sum   float64 // sum of rewards
	sumSq float64 // sum of squared rewards
}

func (s *armStats) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / s.n
}

func (s *armStats) add(r float64) {
	s.n++
	s.sum += r
	s.sumSq += r * r
}

// armTable maps arm IDs to their statistics. Candidate sets may change per
// request, so statistics are keyed by ID, never by position. Callers hold
// the owning policy's lock.
type armTable struct {
	index map[string]int
	stats []armStats
	ids   []string
	// delta holds what record added since the last takeDelta, per slot
	// (the replica's unpublished share; see Mergeable).
	delta []armStats
}

func newArmTable() armTable { return armTable{index: map[string]int{}} }

// slot returns the index of id, adding it when first seen.
func (t *armTable) slot(id string) int {
	if i, ok := t.index[id]; ok {
		return i
	}
	i := len(t.stats)
	t.index[id] = i
	t.stats = append(t.stats, armStats{})
	t.delta = append(t.delta, armStats{})
	t.ids = append(t.ids, id)
	return i
}

// record adds reward r to arm id's statistics and to its delta.
func (t *armTable) record(id string, r float64) {
	i := t.slot(id)
	t.stats[i].add(r)
	t.delta[i].add(r)
}

// get returns the statistics of id, or the zero statistics when unseen.
func (t *armTable) get(id string) armStats {
	if i, ok := t.index[id]; ok {
		return t.stats[i]
	}
	return armStats{}
}

// greedy returns the candidate with the highest mean; unseen arms count as
// best, so each arm is tried once. Ties go to the lowest index, which keeps
// the choice deterministic and its propensity exact.
func (t *armTable) greedy(cands []decision.Arm) int {
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		s := t.get(cands[i].ID)
		v := math.Inf(1)
		if s.n > 0 {
			v = s.mean()
		}
		if v > bestV {
			best, bestV = i, v
		}
	}
	return best
}

// discount multiplies every arm's statistics by gamma. Statistics that have
// faded below 1e-12 of one observation are reset to exactly zero (the arm
// counts as unseen again), which also keeps the arithmetic out of the slow
// subnormal range.
func (t *armTable) discount(gamma float64) {
	for i := range t.stats {
		s := &t.stats[i]
		s.n *= gamma
		s.sum *= gamma
		s.sumSq *= gamma
		if s.n < 1e-12 {
			*s = armStats{}
		}
	}
}
