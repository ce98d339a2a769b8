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

// SlidingUCB is sliding-window UCB (Garivier & Moulines 2011): UCB1 computed
// over the last Window rewards received only, so an arm whose reward changes
// is re-learnt within one window. The window counts reward arrivals (Update
// calls) in arrival order, not decisions. Arms without a reward in the window
// are played first. Deterministic: propensities are 1/0.
type SlidingUCB struct {
	c      float64
	window int

	mu   sync.Mutex
	arms armTable // statistics of the rewards inside the window
	ring []windowEntry
	head int // oldest entry once the ring is full
	// since counts evictions since the windowed sums were last recomputed
	// from the ring; subtracting floats forever would accumulate error.
	since int
}

type windowEntry struct {
	slot   int
	reward float64
}

var (
	_ Policy      = (*SlidingUCB)(nil)
	_ Snapshotter = (*SlidingUCB)(nil)
)

// SlidingUCBOpts configures NewSlidingUCB. The zero value has no
// exploration bonus and a window of 5000 rewards.
type SlidingUCBOpts struct {
	// C, a finite number >= 0, scales the exploration bonus; the
	// registry's "sw-ucb" defaults to 0.5.
	C float64
	// Window is how many of the latest rewards count, in [1, 2²⁴]; 0
	// means 5000.
	Window int
}

// NewSlidingUCB returns sliding-window UCB.
func NewSlidingUCB(o SlidingUCBOpts) (*SlidingUCB, error) {
	c, window := o.C, o.Window
	if window == 0 {
		window = 5000
	}
	if c < 0 || !finite(c) {
		return nil, fmt.Errorf("c %v must be a finite number >= 0", c)
	}
	if window < 1 || window > 1<<24 {
		return nil, fmt.Errorf("window %d outside [1, %d]", window, 1<<24)
	}
	return &SlidingUCB{c: c, window: window, arms: newArmTable(), ring: make([]windowEntry, 0, min(window, 4096))}, nil
}

// Name implements Policy.
func (*SlidingUCB) Name() string { return "sw-ucb" }

// Select implements Policy.
func (p *SlidingUCB) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	p.mu.Lock()
	best := ucbIndex(&p.arms, cands, p.c)
	p.mu.Unlock()
	oneHot(probs, len(cands), best)
	return best, nil
}

// ucbIndex returns the candidate maximising mean + c·sqrt(2 ln N / n), N the
// candidates' total count; the first candidate with n == 0 wins outright.
func ucbIndex(t *armTable, cands []decision.Arm, c float64) int {
	var total float64
	for i := range cands {
		total += t.get(cands[i].ID).n
	}
	logN := math.Log(math.Max(total, 1))
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		s := t.get(cands[i].ID)
		if s.n == 0 {
			return i
		}
		v := s.mean() + c*math.Sqrt(2*logN/s.n)
		if v > bestV {
			best, bestV = i, v
		}
	}
	return best
}

// Update implements Policy.
func (p *SlidingUCB) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := p.arms.slot(cands[chosen].ID)
	e := windowEntry{slot: slot, reward: reward}
	if len(p.ring) < p.window {
		p.ring = append(p.ring, e)
	} else {
		old := p.ring[p.head]
		s := &p.arms.stats[old.slot]
		s.n--
		s.sum -= old.reward
		s.sumSq = math.Max(0, s.sumSq-old.reward*old.reward)
		if s.n <= 0 {
			*s = armStats{}
		}
		p.ring[p.head] = e
		p.head = (p.head + 1) % p.window
		p.since++
	}
	p.arms.stats[slot].add(reward)
	if p.since >= p.window {
		p.recompute()
	}
	return nil
}

// recompute rebuilds the windowed sums from the ring, oldest first.
func (p *SlidingUCB) recompute() {
	for i := range p.arms.stats {
		p.arms.stats[i] = armStats{}
	}
	for j := 0; j < len(p.ring); j++ {
		e := p.ring[(p.head+j)%len(p.ring)]
		p.arms.stats[e.slot].add(e.reward)
	}
	p.since = 0
}

func (p *SlidingUCB) spec() Spec {
	return Spec{Name: "sw-ucb", Params: Params{"c": ff(p.c), "window": strconv.Itoa(p.window)}}
}

type slidingState struct {
	Arms []armJSON `json:"arms"`
	// Window holds the rewards in the window, oldest first, as
	// [index into arms, reward] pairs.
	Window [][2]float64 `json:"window"`
	Since  int          `json:"since"`
}

// Snapshot implements Snapshotter.
func (p *SlidingUCB) Snapshot(w io.Writer) error {
	p.mu.Lock()
	st := slidingState{Arms: p.arms.export(), Window: make([][2]float64, len(p.ring)), Since: p.since}
	for j := range p.ring {
		e := p.ring[(p.head+j)%len(p.ring)]
		st.Window[j] = [2]float64{float64(e.slot), e.reward}
	}
	p.mu.Unlock()
	return writeSnapshot(w, p.spec(), st)
}

// Restore implements Snapshotter. It checks that the saved window sums
// agree with the saved window.
func (p *SlidingUCB) Restore(r io.Reader) error {
	var st slidingState
	if err := readSnapshot(r, p.spec(), &st); err != nil {
		return err
	}
	arms, err := importArms(st.Arms, nil)
	if err != nil {
		return err
	}
	if len(st.Window) > p.window {
		return fmt.Errorf("%w: window holds %d rewards, policy window is %d", ErrSnapshot, len(st.Window), p.window)
	}
	if st.Since < 0 || st.Since >= p.window {
		return fmt.Errorf("%w: since %d outside [0,%d)", ErrSnapshot, st.Since, p.window)
	}
	ring := make([]windowEntry, len(st.Window), max(len(st.Window), min(p.window, 4096)))
	check := make([]armStats, len(arms.stats))
	for j, e := range st.Window {
		slot := int(e[0])
		if float64(slot) != e[0] || slot < 0 || slot >= len(arms.stats) || !finite(e[1]) {
			return fmt.Errorf("%w: window[%d] = %v: arm index or reward invalid", ErrSnapshot, j, e)
		}
		ring[j] = windowEntry{slot: slot, reward: e[1]}
		check[slot].add(e[1])
	}
	for i, s := range arms.stats {
		c := check[i]
		tol := 1e-6 * (1 + math.Abs(c.sum) + c.n)
		if s.n != c.n || math.Abs(s.sum-c.sum) > tol {
			return fmt.Errorf("%w: arm %q: saved window statistics (n=%v, sum=%v) disagree with the window (n=%v, sum=%v)", ErrSnapshot, arms.ids[i], s.n, s.sum, c.n, c.sum)
		}
	}
	p.mu.Lock()
	p.arms, p.ring, p.head, p.since = arms, ring, 0, st.Since
	p.mu.Unlock()
	return nil
}

// DiscountedUCB is discounted UCB (Kocsis & Szepesvári 2006; Garivier &
// Moulines 2011): every arm's count and reward sum are multiplied by Gamma
// at each reward received, so the index mean + c·sqrt(2 ln N_γ / n_γ) tracks
// recent performance with an effective memory of about 1/(1−Gamma) rewards.
// The discount clock is reward arrivals (Update calls). Deterministic:
// propensities are 1/0.
type DiscountedUCB struct {
	c, gamma float64

	mu   sync.Mutex
	arms armTable
}

var (
	_ Policy      = (*DiscountedUCB)(nil)
	_ Snapshotter = (*DiscountedUCB)(nil)
)

// DiscountedUCBOpts configures NewDiscountedUCB. The zero value has no
// exploration bonus and a discount of 0.9998 per reward.
type DiscountedUCBOpts struct {
	// C, a finite number >= 0, scales the exploration bonus; the
	// registry's "d-ucb" defaults to 0.5.
	C float64
	// Gamma, in (0,1], multiplies every arm's statistics at each reward;
	// 0 means 0.9998.
	Gamma float64
}

// NewDiscountedUCB returns discounted UCB.
func NewDiscountedUCB(o DiscountedUCBOpts) (*DiscountedUCB, error) {
	c, gamma := o.C, o.Gamma
	if gamma == 0 {
		gamma = 0.9998
	}
	if c < 0 || !finite(c) {
		return nil, fmt.Errorf("c %v must be a finite number >= 0", c)
	}
	if !(gamma > 0 && gamma <= 1) {
		return nil, fmt.Errorf("gamma %v outside (0,1]", gamma)
	}
	return &DiscountedUCB{c: c, gamma: gamma, arms: newArmTable()}, nil
}

// Name implements Policy.
func (*DiscountedUCB) Name() string { return "d-ucb" }

// Select implements Policy.
func (p *DiscountedUCB) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	p.mu.Lock()
	best := ucbIndex(&p.arms, cands, p.c)
	p.mu.Unlock()
	oneHot(probs, len(cands), best)
	return best, nil
}

// Update implements Policy.
func (p *DiscountedUCB) Update(_ *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	p.mu.Lock()
	p.arms.discount(p.gamma)
	p.arms.stats[p.arms.slot(cands[chosen].ID)].add(reward)
	p.mu.Unlock()
	return nil
}

func (p *DiscountedUCB) spec() Spec {
	return Spec{Name: "d-ucb", Params: Params{"c": ff(p.c), "gamma": ff(p.gamma)}}
}

// Snapshot implements Snapshotter.
func (p *DiscountedUCB) Snapshot(w io.Writer) error {
	return snapshotArms(w, p.spec(), &p.mu, nil, &p.arms)
}

// Restore implements Snapshotter.
func (p *DiscountedUCB) Restore(r io.Reader) error {
	return restoreArms(r, p.spec(), &p.mu, nil, &p.arms, nil)
}
