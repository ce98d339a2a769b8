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

// RouterArm is one model's learned predictors in a LinearRouter: predicted
// quality Quality·x (through the logistic function when Logistic) and
// predicted cost max(0, Cost·x) in US dollars, over the encoder's vector x.
type RouterArm struct {
	ID       string    `json:"arm"`
	Quality  []float64 `json:"quality"`
	Logistic bool      `json:"logistic,omitempty"`
	Cost     []float64 `json:"cost"`
}

// LinearRouterOpts configures a LinearRouter.
type LinearRouterOpts struct {
	// Dim is the feature vector's length; 0 takes the length of the first
	// vector seen (only useful before any arm is set).
	Dim int
	// Lambda is the willingness to pay: Select maximises predicted quality
	// − Lambda·predicted cost.
	Lambda float64
	// Arms are the trained predictors (usually set by Restore from an
	// artifact written by `routelab benchdata --save-policy`).
	Arms []RouterArm
	// Budget, when > 0, is a spend target in US dollars per request,
	// enforced online per tenant by a dual price: every decision adds
	// Eta·(predicted cost − Budget)/Budget to the tenant's price (never
	// below 0), and Select maximises predicted quality − (Lambda +
	// price)·predicted cost. Spending above the budget raises the price
	// until cheaper models win; spending below lowers it again.
	Budget float64
	// Eta is the dual step size (0 means 0.05).
	Eta float64
}

// LinearRouter is the served form of a full-information router trained
// offline (routelab benchdata): per model a linear quality and cost
// predictor on the feature vector; Select picks the candidate with the
// highest predicted quality − Lambda·predicted cost, deterministically
// (probability 1; wrap it with a floor for off-policy evaluation).
// Candidates it has no predictor for score −∞ (the first candidate is
// chosen when none is known). It is frozen: Update validates its input and
// learns nothing. Select costs K dot products of Dim and does not allocate.
type LinearRouter struct {
	mu     sync.RWMutex
	dim    int
	lambda float64
	budget float64
	eta    float64
	arms   map[string]*RouterArm
	order  []string
	// dual is the budget's price per tenant ("" = no tenant), guarded by mu.
	dual map[string]float64
}

var (
	_ Policy      = (*LinearRouter)(nil)
	_ Snapshotter = (*LinearRouter)(nil)
)

// NewLinearRouter validates o and builds the router.
func NewLinearRouter(o LinearRouterOpts) (*LinearRouter, error) {
	if o.Dim < 0 || o.Dim > maxTextBuckets+4096 {
		return nil, fmt.Errorf("dim %d outside [0, %d]", o.Dim, maxTextBuckets+4096)
	}
	if !(o.Lambda >= 0) || math.IsInf(o.Lambda, 1) {
		return nil, fmt.Errorf("lambda %v: must be a finite number >= 0", o.Lambda)
	}
	if !(o.Budget >= 0) || math.IsInf(o.Budget, 1) {
		return nil, fmt.Errorf("budget %v: must be a finite number >= 0", o.Budget)
	}
	if !(o.Eta >= 0) || o.Eta > 10 {
		return nil, fmt.Errorf("eta %v: must be in [0, 10]", o.Eta)
	}
	if o.Eta == 0 {
		o.Eta = 0.05
	}
	p := &LinearRouter{dim: o.Dim, lambda: o.Lambda, budget: o.Budget, eta: o.Eta, dual: map[string]float64{}}
	arms, order, err := routerArms(o.Dim, o.Arms)
	if err != nil {
		return nil, err
	}
	p.arms, p.order = arms, order
	return p, nil
}

// routerArms validates arms against dim and indexes them.
func routerArms(dim int, in []RouterArm) (map[string]*RouterArm, []string, error) {
	arms := make(map[string]*RouterArm, len(in))
	var order []string
	for i := range in {
		a := in[i]
		if a.ID == "" {
			return nil, nil, fmt.Errorf("router arm %d: empty id", i)
		}
		if _, dup := arms[a.ID]; dup {
			return nil, nil, fmt.Errorf("router arm %q listed twice", a.ID)
		}
		if len(a.Quality) != dim || len(a.Cost) != dim {
			return nil, nil, fmt.Errorf("router arm %q: %d quality and %d cost weights for dim %d", a.ID, len(a.Quality), len(a.Cost), dim)
		}
		for j, w := range append(append([]float64(nil), a.Quality...), a.Cost...) {
			if math.IsNaN(w) || math.IsInf(w, 0) || math.Abs(w) > maxMagnitude {
				return nil, nil, fmt.Errorf("router arm %q: weight %d = %v", a.ID, j, w)
			}
		}
		a.Quality, a.Cost = append([]float64(nil), a.Quality...), append([]float64(nil), a.Cost...)
		arms[a.ID] = &a
		order = append(order, a.ID)
	}
	return arms, order, nil
}

// Name implements Policy.
func (p *LinearRouter) Name() string { return "linear-router" }

func (p *LinearRouter) spec() Spec {
	ps := Params{"dim": strconv.Itoa(p.dim), "lambda": ff(p.lambda)}
	if p.budget > 0 {
		ps["budget"], ps["eta"] = ff(p.budget), ff(p.eta)
	}
	return Spec{Name: "linear-router", Params: ps}
}

// checkVec validates f's vector against the router's dimension.
func (p *LinearRouter) checkVec(f *decision.Features) error {
	var x []float64
	if f != nil {
		x = f.Vector
	}
	if len(x) == 0 {
		return fmt.Errorf("%w: policy linear-router needs decision.Features.Vector (configure an Encoder); got none", ErrBadVector)
	}
	if p.dim != 0 && len(x) != p.dim {
		return fmt.Errorf("%w: policy linear-router expects %d dims, got %d", ErrBadVector, p.dim, len(x))
	}
	for i, v := range x {
		if !(math.Abs(v) <= maxMagnitude) { // NaN, ±Inf or too large
			return fmt.Errorf("%w: policy linear-router: Vector[%d] = %v", ErrBadVector, i, v)
		}
	}
	return nil
}

// Score returns the router's predicted quality and cost of arm for f, and
// whether it knows the arm.
func (p *LinearRouter) Score(f *decision.Features, arm string) (quality, cost float64, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.score(f, arm)
}

// score is Score with p.mu held.
func (p *LinearRouter) score(f *decision.Features, arm string) (quality, cost float64, ok bool) {
	a, ok := p.arms[arm]
	if !ok || f == nil || len(f.Vector) != len(a.Quality) {
		return 0, 0, false
	}
	q, c := 0.0, 0.0
	for i, x := range f.Vector {
		if x != 0 {
			q += a.Quality[i] * x
			c += a.Cost[i] * x
		}
	}
	if a.Logistic {
		q = 1 / (1 + math.Exp(-q))
	}
	return q, max(0, c), true
}

// Select implements Policy.
func (p *LinearRouter) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if err := checkSelect(cands, probs); err != nil {
		return 0, err
	}
	if err := p.checkVec(f); err != nil {
		return 0, err
	}
	if p.budget > 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
	} else {
		p.mu.RLock()
		defer p.mu.RUnlock()
	}
	lam := p.lambda + p.dual[f.Tenant]
	best, bv, bc := 0, math.Inf(-1), 0.0
	consider := func(i int, q, c float64) {
		if v := q - lam*c; v > bv {
			best, bv, bc = i, v, c
		}
	}
	if len(cands) <= maxFastCands {
		// Dense dot products, four candidates per pass over the vector
		// (routerDots), or over its non-zero slots when few.
		var (
			as     [maxFastCands]*RouterArm
			qs, cs [maxFastCands]float64
		)
		for i := range cands {
			if a, ok := p.arms[cands[i].ID]; ok && len(a.Quality) == len(f.Vector) {
				as[i] = a
			}
		}
		routerDots(f.Vector, as[:len(cands)], qs[:], cs[:])
		for i, a := range as[:len(cands)] {
			if a == nil {
				continue
			}
			q := qs[i]
			if a.Logistic {
				q = 1 / (1 + math.Exp(-q))
			}
			consider(i, q, max(0, cs[i]))
		}
	} else {
		for i := range cands {
			if q, c, ok := p.score(f, cands[i].ID); ok {
				consider(i, q, c)
			}
		}
	}
	if p.budget > 0 && !math.IsInf(bv, -1) {
		p.dual[f.Tenant] = max(0, p.dual[f.Tenant]+p.eta*(bc-p.budget)/p.budget)
	}
	for i := range cands {
		probs[i] = 0
	}
	probs[best] = 1
	return best, nil
}

// Update implements Policy: it validates the input and learns nothing (the
// router is trained offline).
func (p *LinearRouter) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if err := checkUpdate(cands, chosen, reward); err != nil {
		return err
	}
	return p.checkVec(f)
}

// maxFastCands bounds the candidates Select scores in one pass over the
// vector (stack arrays); more take one pass each.
const maxFastCands = 32

type routerState struct {
	Arms []RouterArm `json:"arms"`
	// Dual is the budget's price per tenant.
	Dual map[string]float64 `json:"dual,omitempty"`
}

// Price returns the budget's current price (per dollar) for tenant.
func (p *LinearRouter) Price(tenant string) float64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dual[tenant]
}

// Snapshot implements Snapshotter.
func (p *LinearRouter) Snapshot(w io.Writer) error {
	p.mu.RLock()
	st := routerState{Arms: make([]RouterArm, 0, len(p.order))}
	for _, id := range p.order {
		st.Arms = append(st.Arms, *p.arms[id])
	}
	if len(p.dual) > 0 {
		st.Dual = make(map[string]float64, len(p.dual))
		for k, v := range p.dual {
			st.Dual[k] = v
		}
	}
	spec := p.spec()
	p.mu.RUnlock()
	return writeSnapshot(w, spec, st)
}

// Restore implements Snapshotter.
func (p *LinearRouter) Restore(r io.Reader) error {
	var st routerState
	if err := readSnapshot(r, p.spec(), &st); err != nil {
		return err
	}
	arms, order, err := routerArms(p.dim, st.Arms)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	dual := map[string]float64{}
	for k, v := range st.Dual {
		if !(v >= 0) || math.IsInf(v, 1) {
			return fmt.Errorf("%w: dual price %v of tenant %q", ErrSnapshot, v, k)
		}
		dual[k] = v
	}
	p.mu.Lock()
	p.arms, p.order, p.dual = arms, order, dual
	p.mu.Unlock()
	return nil
}
