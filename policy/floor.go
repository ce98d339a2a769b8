package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/routelab/routelab/decision"
)

// FloorParam is the parameter every registry spec accepts to wrap the
// policy in an exploration floor: "ucb1=floor:0.05" is UCB1 whose every
// candidate keeps probability at least 0.05/K.
const FloorParam = "floor"

// floorSeedMix separates the floor's coin stream from the inner policy's
// stream when both are seeded from the same "seed" parameter.
const floorSeedMix = 0x5851f42d4c957f2d

// Floor wraps a policy so that every candidate has probability at least
// Epsilon/K, and reports exact propensities, which makes the logs of any
// policy — deterministic ones such as UCB1, LinUCB or the weighted score
// included — usable for off-policy evaluation.
//
// On each Select it asks the inner policy for its choice c and propensities
// q, then with probability Epsilon plays a uniformly random candidate and
// otherwise c. The propensity of candidate i is therefore
//
//	pᵢ = Epsilon/K + (1−Epsilon)·qᵢ.
//
// Why the inner's q is the right quantity even when it is "conditional":
// Thompson sampling with one draw reports q = 1 for the winner of its
// internal posterior sample ξ and 0 elsewhere — the probability of each arm
// given ξ, not its marginal probability. Off-policy estimators need
// P(A = i | everything the logger knew before acting) with the reward
// independent of that randomness. ξ is drawn before acting and independently
// of the reward, so it can be treated as part of the context: conditional
// on (x, ξ), the logged pᵢ is exactly the probability of the action taken,
// IPS is unbiased given (x, ξ), and so unbiased after averaging over ξ.
// What IPS also needs is support — pᵢ > 0 for every arm the evaluated
// policy may choose — and the floor guarantees pᵢ ≥ Epsilon/K for every
// candidate whatever ξ was. (Marginal propensities would only reduce the
// estimator's variance.)
//
// The wrapper reports the inner policy's Name, so logs and registries keep
// the familiar name; Version appends "+floor:EPS" so the exploration is
// visible in the log's policy version.
type Floor struct {
	inner Policy
	eps   float64

	mu  sync.Mutex
	rng prng
}

var (
	_ Policy      = (*Floor)(nil)
	_ Snapshotter = (*Floor)(nil)
	_ Versioner   = (*Floor)(nil)
)

// WithFloor wraps p in an exploration floor of eps in [0,1], drawing its
// coin from a stream seeded by seed.
func WithFloor(p Policy, eps float64, seed uint64) (*Floor, error) {
	if p == nil {
		return nil, fmt.Errorf("floor: no inner policy")
	}
	if _, nested := p.(*Floor); nested {
		return nil, fmt.Errorf("floor: policy %q already has an exploration floor", p.Name())
	}
	if !(eps >= 0 && eps <= 1) {
		return nil, fmt.Errorf("floor %v outside [0,1]", eps)
	}
	return &Floor{inner: p, eps: eps, rng: newPRNG(seed ^ floorSeedMix)}, nil
}

// Inner returns the wrapped policy.
func (p *Floor) Inner() Policy { return p.inner }

// Epsilon returns the floor's total exploration probability.
func (p *Floor) Epsilon() float64 { return p.eps }

// Name implements Policy: the inner policy's name.
func (p *Floor) Name() string { return p.inner.Name() }

// Version implements Versioner.
func (p *Floor) Version() string { return VersionOf(p.inner) + "+floor:" + ff(p.eps) }

// Select implements Policy.
func (p *Floor) Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	k := len(cands)
	c, err := p.inner.Select(ctx, f, cands, probs)
	if err != nil {
		return 0, err
	}
	if c < 0 || c >= k {
		return 0, fmt.Errorf("floor: inner policy %s chose %d of %d candidates", p.inner.Name(), c, k)
	}
	for i := 0; i < k; i++ {
		probs[i] = p.eps/float64(k) + (1-p.eps)*probs[i]
	}
	p.mu.Lock()
	if p.rng.Float64() < p.eps {
		c = p.rng.IntN(k)
	}
	p.mu.Unlock()
	return c, nil
}

// Update implements Policy: the inner policy learns from every reward,
// including those of exploratory choices.
func (p *Floor) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	return p.inner.Update(f, cands, chosen, reward)
}

// ObserveSpend implements SpendObserver for an inner policy that enforces
// a budget. (When the floor explored, the inner policy charged its own
// choice's prediction and the served model's replaces it: the budget
// counts the difference of the two predictions as spend.)
func (p *Floor) ObserveSpend(f *decision.Features, chosen string, routed bool, cost float64) {
	if so, ok := p.inner.(SpendObserver); ok {
		so.ObserveSpend(f, chosen, routed, cost)
	}
}

// SetBudget implements Budgeted when the inner policy does.
func (p *Floor) SetBudget(s BudgetSpec) error {
	if b, ok := p.inner.(Budgeted); ok {
		return b.SetBudget(s)
	}
	return fmt.Errorf("policy %s enforces no spend budget (linear-router does)", p.inner.Name())
}

// BudgetSpec implements Budgeted: the inner policy's budget, if any.
func (p *Floor) BudgetSpec() BudgetSpec {
	if b, ok := p.inner.(Budgeted); ok {
		return b.BudgetSpec()
	}
	return BudgetSpec{}
}

// spec is the inner policy's spec plus the floor parameter.
func (p *Floor) spec() Spec {
	s := Spec{Name: p.inner.Name(), Params: Params{}}
	if sp, ok := p.inner.(speccer); ok {
		for k, v := range sp.spec().Params {
			s.Params[k] = v
		}
	} else if sp, ok := p.inner.(SpecReporter); ok {
		for k, v := range sp.Spec().Params {
			s.Params[k] = v
		}
	}
	s.Params[FloorParam] = ff(p.eps)
	return s
}

type floorState struct {
	RNG []byte `json:"rng"`
	// Inner is the inner policy's complete snapshot.
	Inner json.RawMessage `json:"inner"`
}

// Snapshot implements Snapshotter when the inner policy does.
func (p *Floor) Snapshot(w io.Writer) error {
	in, ok := p.inner.(Snapshotter)
	if !ok {
		return fmt.Errorf("snapshot %s: inner policy cannot snapshot", p.inner.Name())
	}
	var buf bytes.Buffer
	if err := in.Snapshot(&buf); err != nil {
		return err
	}
	p.mu.Lock()
	st := floorState{RNG: p.rng.state(), Inner: json.RawMessage(bytes.TrimSpace(buf.Bytes()))}
	p.mu.Unlock()
	return writeSnapshot(w, p.spec(), st)
}

// Restore implements Snapshotter. The floor's own state is validated before
// the inner policy restores, and the inner restore is all-or-nothing, so a
// failed Restore changes nothing.
func (p *Floor) Restore(r io.Reader) error {
	in, ok := p.inner.(Snapshotter)
	if !ok {
		return fmt.Errorf("restore %s: inner policy cannot restore", p.inner.Name())
	}
	var st floorState
	if err := readSnapshot(r, p.spec(), &st); err != nil {
		return err
	}
	pcg, err := parsePRNG(st.RNG)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	if len(st.Inner) == 0 {
		return fmt.Errorf("%w: floor snapshot has no inner state", ErrSnapshot)
	}
	if err := in.Restore(bytes.NewReader(st.Inner)); err != nil {
		return fmt.Errorf("restore floor's inner policy: %w", err)
	}
	p.mu.Lock()
	p.rng.set(pcg)
	p.mu.Unlock()
	return nil
}

// floorFromParams builds spec s through build, wrapping the result in a
// floor when s has the floor parameter. The floor's coin is seeded from the
// spec's "seed" (default 1), mixed so it differs from the inner stream.
func floorFromParams(s Spec, build func(Params) (Policy, error)) (Policy, error) {
	fs, ok := s.Params[FloorParam]
	if !ok {
		return build(s.Params)
	}
	eps, err := s.Params.Float(FloorParam, 0)
	if err != nil {
		return nil, err
	}
	if !(eps >= 0 && eps <= 1) || math.IsNaN(eps) {
		return nil, fmt.Errorf("parameter %q: %s outside [0,1]", FloorParam, fs)
	}
	seed, err := s.Params.Uint64("seed", 1)
	if err != nil {
		return nil, err
	}
	rest := make(Params, len(s.Params)-1)
	for k, v := range s.Params {
		if k != FloorParam {
			rest[k] = v
		}
	}
	inner, err := build(rest)
	if err != nil {
		return nil, err
	}
	return WithFloor(inner, eps, seed)
}
