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
	// Budget, when Active, is a spend budget enforced online per tenant
	// by a dual price (see Budget): Select maximises predicted quality −
	// (Lambda + price)·predicted cost and charges the chosen model's
	// predicted cost; ObserveSpend (called by route.Core when a request
	// completes) replaces it by the realised cost.
	Budget BudgetSpec
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
	arms   map[string]*RouterArm
	order  []string
	// budget enforces the spend budget (nil: none); the pointer is
	// guarded by mu, the Budget locks itself.
	budget *Budget
}

var (
	_ Policy        = (*LinearRouter)(nil)
	_ Snapshotter   = (*LinearRouter)(nil)
	_ SpendObserver = (*LinearRouter)(nil)
	_ Budgeted      = (*LinearRouter)(nil)
)

// NewLinearRouter validates o and builds the router.
func NewLinearRouter(o LinearRouterOpts) (*LinearRouter, error) {
	if o.Dim < 0 || o.Dim > maxTextBuckets+4096 {
		return nil, fmt.Errorf("dim %d outside [0, %d]", o.Dim, maxTextBuckets+4096)
	}
	if !(o.Lambda >= 0) || math.IsInf(o.Lambda, 1) {
		return nil, fmt.Errorf("lambda %v: must be a finite number >= 0", o.Lambda)
	}
	p := &LinearRouter{dim: o.Dim, lambda: o.Lambda}
	if o.Budget.Active() {
		b, err := NewBudget(o.Budget)
		if err != nil {
			return nil, err
		}
		p.budget = b
	} else if err := o.Budget.Validate(); err != nil {
		return nil, err
	}
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
	if p.budget != nil {
		p.budget.spec.params(ps)
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
	p.mu.RLock()
	defer p.mu.RUnlock()
	lam := p.lambda
	if p.budget != nil {
		lam += p.budget.Price(f.Tenant, f.Time)
	}
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
	if p.budget != nil && !math.IsInf(bv, -1) {
		p.budget.Charge(f.Tenant, f.Time, bc)
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
	// Dual is the budget's price per tenant (quality per USD).
	Dual map[string]float64 `json:"dual,omitempty"`
	// Budget is the budget's window accounts per tenant.
	Budget map[string]BudgetState `json:"budget,omitempty"`
}

// Price returns the budget's current dual price (quality per USD) for
// tenant, 0 without a budget.
func (p *LinearRouter) Price(tenant string) float64 {
	p.mu.RLock()
	b := p.budget
	p.mu.RUnlock()
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ts := b.tenants[tenant]; ts != nil {
		return ts.price
	}
	return 0
}

// ObserveSpend implements SpendObserver: the realised cost of a completed
// request replaces the predicted cost Select charged to the tenant's
// budget (or counts in full when Select did not choose the model).
func (p *LinearRouter) ObserveSpend(f *decision.Features, chosen string, routed bool, cost float64) {
	if f == nil {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.budget == nil {
		return
	}
	pred, charged := 0.0, false
	if routed {
		_, pred, charged = p.score(f, chosen)
	}
	p.budget.Observe(f.Tenant, f.Time, charged, pred, cost)
}

// BudgetSpec implements Budgeted.
func (p *LinearRouter) BudgetSpec() BudgetSpec {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.budget == nil {
		return BudgetSpec{}
	}
	return p.budget.Spec()
}

// SetBudget implements Budgeted: it replaces the budget (an inactive spec
// removes it) and keeps the tenants' prices and windows.
func (p *LinearRouter) SetBudget(s BudgetSpec) error {
	var nb *Budget
	if s.Active() {
		var err error
		if nb, err = NewBudget(s); err != nil {
			return err
		}
	} else if err := s.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if nb != nil && p.budget != nil {
		if err := nb.SetState(p.budget.State()); err != nil {
			return err
		}
	}
	p.budget = nb
	return nil
}

// Snapshot implements Snapshotter.
func (p *LinearRouter) Snapshot(w io.Writer) error {
	p.mu.RLock()
	st := routerState{Arms: make([]RouterArm, 0, len(p.order))}
	for _, id := range p.order {
		st.Arms = append(st.Arms, *p.arms[id])
	}
	if p.budget != nil {
		for k, v := range p.budget.State() {
			if st.Dual == nil {
				st.Dual, st.Budget = map[string]float64{}, map[string]BudgetState{}
			}
			st.Dual[k] = v.Price
			v.Price = 0
			st.Budget[k] = v
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.budget == nil {
		if len(st.Dual) > 0 || len(st.Budget) > 0 {
			return fmt.Errorf("%w: budget state for a router without a budget", ErrSnapshot)
		}
	} else {
		bs := map[string]BudgetState{}
		for k, v := range st.Dual {
			w, ok := st.Budget[k]
			if !ok {
				w.PrevRequests = -1
			}
			w.Price = v
			bs[k] = w
		}
		for k := range st.Budget {
			if _, ok := st.Dual[k]; !ok {
				return fmt.Errorf("%w: budget window of tenant %q without a dual price", ErrSnapshot, k)
			}
		}
		// A fresh Budget takes the state, so that a bad state leaves the
		// router unchanged.
		nb, err := NewBudget(p.budget.spec)
		if err != nil {
			return err
		}
		if err := nb.SetState(bs); err != nil {
			return fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		p.budget = nb
	}
	p.arms, p.order = arms, order
	return nil
}
