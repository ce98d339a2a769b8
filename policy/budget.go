package policy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/routelab/routelab/decision"
)

// BudgetSpec is a spend budget, enforced separately for every tenant (""
// is the tenant of requests without one). The zero value is no budget.
//
//	budget:
//	  per_request: 0.0013   # USD per request on average (0 = no such limit)
//	  window: 1h            # with limit: at most limit USD per window
//	  limit: 5.00
//	  eta: 0.001            # the dual price's step (0 = DefaultBudgetEta)
//	  tenants:              # per-tenant overrides of per_request and limit
//	    acme: {limit: 20}
//
// Windows are aligned to the Unix epoch (1h: every hour on the hour) and
// measured on the requests' Features.Time; requests without a time are
// held to per_request only.
type BudgetSpec struct {
	PerRequest float64       `yaml:"per_request" json:"per_request,omitempty"`
	Window     time.Duration `yaml:"window" json:"window,omitempty"`
	Limit      float64       `yaml:"limit" json:"limit,omitempty"`
	Eta        float64       `yaml:"eta" json:"eta,omitempty"`
	// Tenants override PerRequest and Limit for the named tenants.
	Tenants map[string]TenantBudget `yaml:"tenants" json:"tenants,omitempty"`
}

// TenantBudget overrides a BudgetSpec's limits for one tenant; an absent
// (nil) field keeps the spec's value, 0 lifts that limit.
type TenantBudget struct {
	PerRequest *float64 `yaml:"per_request" json:"per_request,omitempty"`
	Limit      *float64 `yaml:"limit" json:"limit,omitempty"`
}

// DefaultBudgetEta is the dual price's step when BudgetSpec.Eta is 0. In
// units of the per-request target b, one request costing c moves the
// price by Eta·(c − b)/b², so a request at four times the target raises
// the price of spending the whole target by 0.003 (in quality): a few
// dozen such requests make a 0.1 quality difference worth giving up.
const DefaultBudgetEta = 0.001

// maxBudgetPrice caps the dual price (quality per USD): at this price the
// router picks the candidate with the lowest predicted cost. An exhausted
// window is priced at it.
const maxBudgetPrice = 1e9

// Active reports whether s limits anything.
func (s BudgetSpec) Active() bool {
	if s.PerRequest > 0 || s.Limit > 0 {
		return true
	}
	for _, t := range s.Tenants {
		if (t.PerRequest != nil && *t.PerRequest > 0) || (t.Limit != nil && *t.Limit > 0) {
			return true
		}
	}
	return false
}

// Validate reports the first bad field, named as in YAML.
func (s BudgetSpec) Validate() error {
	usd := func(name string, v float64) error {
		if !(v >= 0) || math.IsInf(v, 1) {
			return fmt.Errorf("budget.%s: %v must be a finite number of USD >= 0", name, v)
		}
		return nil
	}
	if err := usd("per_request", s.PerRequest); err != nil {
		return err
	}
	if err := usd("limit", s.Limit); err != nil {
		return err
	}
	if s.Window < 0 {
		return fmt.Errorf("budget.window: %v must be > 0", s.Window)
	}
	limited := s.Limit > 0
	for _, name := range s.tenantNames() {
		t := s.Tenants[name]
		if name == "" {
			return fmt.Errorf("budget.tenants: empty tenant name")
		}
		if t.PerRequest != nil {
			if err := usd("tenants."+name+".per_request", *t.PerRequest); err != nil {
				return err
			}
		}
		if t.Limit != nil {
			if err := usd("tenants."+name+".limit", *t.Limit); err != nil {
				return err
			}
			limited = limited || *t.Limit > 0
		}
	}
	if limited && s.Window == 0 {
		return fmt.Errorf("budget.window: a limit per window needs a window > 0 (e.g. 1h)")
	}
	if s.Window > 0 && !limited {
		return fmt.Errorf("budget.limit: window %v needs a limit > 0 (USD per window)", s.Window)
	}
	if !(s.Eta >= 0 && s.Eta <= 1) {
		return fmt.Errorf("budget.eta: %v must be in [0, 1]", s.Eta)
	}
	return nil
}

func (s BudgetSpec) tenantNames() []string {
	names := make([]string, 0, len(s.Tenants))
	for k := range s.Tenants {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Clone returns a deep copy of s.
func (s BudgetSpec) Clone() BudgetSpec {
	c := s
	if s.Tenants != nil {
		c.Tenants = make(map[string]TenantBudget, len(s.Tenants))
		for k, v := range s.Tenants {
			if v.PerRequest != nil {
				x := *v.PerRequest
				v.PerRequest = &x
			}
			if v.Limit != nil {
				x := *v.Limit
				v.Limit = &x
			}
			c.Tenants[k] = v
		}
	}
	return c
}

// Budget parameters of a policy spec (linear-router): budget (USD per
// request), budget_window (a Go duration), budget_limit (USD per window),
// budget_eta and budget_tenants ("TENANT=PER_REQUEST/LIMIT" separated by
// spaces, an empty side keeping the default).
const (
	ParamBudget        = "budget"
	ParamBudgetWindow  = "budget_window"
	ParamBudgetLimit   = "budget_limit"
	ParamBudgetEta     = "budget_eta"
	ParamBudgetTenants = "budget_tenants"
)

// BudgetParams are the parameter names BudgetFromParams reads.
var BudgetParams = []string{ParamBudget, ParamBudgetWindow, ParamBudgetLimit, ParamBudgetEta, ParamBudgetTenants}

// BudgetFromParams reads a budget from a policy spec's parameters.
func BudgetFromParams(p Params) (BudgetSpec, error) {
	var s BudgetSpec
	var err error
	if s.PerRequest, err = p.Float(ParamBudget, 0); err != nil {
		return s, err
	}
	if s.Limit, err = p.Float(ParamBudgetLimit, 0); err != nil {
		return s, err
	}
	if s.Eta, err = p.Float(ParamBudgetEta, 0); err != nil {
		return s, err
	}
	if w := p.String(ParamBudgetWindow, ""); w != "" {
		if s.Window, err = time.ParseDuration(w); err != nil {
			return s, fmt.Errorf("parameter %q: %q is not a duration (like 1h)", ParamBudgetWindow, w)
		}
	}
	if ts := p.String(ParamBudgetTenants, ""); ts != "" {
		s.Tenants = map[string]TenantBudget{}
		for _, f := range strings.Fields(ts) {
			name, lim, ok := strings.Cut(f, "=")
			pr, wl, ok2 := strings.Cut(lim, "/")
			if !ok || !ok2 || name == "" {
				return s, fmt.Errorf("parameter %q: %q is not TENANT=PER_REQUEST/LIMIT", ParamBudgetTenants, f)
			}
			var tb TenantBudget
			for _, x := range []struct {
				s   string
				dst **float64
			}{{pr, &tb.PerRequest}, {wl, &tb.Limit}} {
				if x.s == "" {
					continue
				}
				v, err := strconv.ParseFloat(x.s, 64)
				if err != nil {
					return s, fmt.Errorf("parameter %q: %q: %q is not a number", ParamBudgetTenants, f, x.s)
				}
				*x.dst = &v
			}
			if _, dup := s.Tenants[name]; dup {
				return s, fmt.Errorf("parameter %q: tenant %q given twice", ParamBudgetTenants, name)
			}
			s.Tenants[name] = tb
		}
	}
	return s, s.Validate()
}

// params writes s into p as BudgetFromParams reads it (nothing when s is
// not Active).
func (s BudgetSpec) params(p Params) {
	if !s.Active() {
		return
	}
	if s.PerRequest > 0 {
		p[ParamBudget] = ff(s.PerRequest)
	}
	if s.Window > 0 {
		p[ParamBudgetWindow] = s.Window.String()
	}
	if s.Limit > 0 {
		p[ParamBudgetLimit] = ff(s.Limit)
	}
	p[ParamBudgetEta] = ff(s.eta())
	if len(s.Tenants) > 0 {
		var parts []string
		for _, name := range s.tenantNames() {
			t := s.Tenants[name]
			part := name + "="
			if t.PerRequest != nil {
				part += ff(*t.PerRequest)
			}
			part += "/"
			if t.Limit != nil {
				part += ff(*t.Limit)
			}
			parts = append(parts, part)
		}
		p[ParamBudgetTenants] = strings.Join(parts, " ")
	}
}

func (s BudgetSpec) eta() float64 {
	if s.Eta == 0 {
		return DefaultBudgetEta
	}
	return s.Eta
}

// ParseBudget reads the command-line form of a budget:
// "per_request=0.0013,window=1h,limit=5,eta=0.001" (any subset; a bare
// number is per_request; "" is no budget). Tenant overrides are for YAML
// and policy parameters.
func ParseBudget(s string) (BudgetSpec, error) {
	var b BudgetSpec
	if strings.TrimSpace(s) == "" {
		return b, nil
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
		b.PerRequest = v
		return b, b.Validate()
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return b, fmt.Errorf("budget %q: %q is not key=value", s, kv)
		}
		if seen[k] {
			return b, fmt.Errorf("budget %q: %s given twice", s, k)
		}
		seen[k] = true
		var dst *float64
		switch k {
		case "per_request":
			dst = &b.PerRequest
		case "limit":
			dst = &b.Limit
		case "eta":
			dst = &b.Eta
		case "window":
			d, err := time.ParseDuration(v)
			if err != nil {
				return b, fmt.Errorf("budget %q: window %q is not a duration (like 1h)", s, v)
			}
			b.Window = d
			continue
		default:
			return b, fmt.Errorf("budget %q: unknown key %q (known: per_request, window, limit, eta)", s, k)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return b, fmt.Errorf("budget %q: %s %q is not a number", s, k, v)
		}
		*dst = x
	}
	return b, b.Validate()
}

// Budget enforces a BudgetSpec online with a dual (Lagrangian) price per
// tenant, in quality per US dollar: a cost-aware policy maximises
// predicted quality − (λ + Price)·predicted cost. At decision time the
// policy Charges the chosen model's predicted cost; when the request
// completes, Observe replaces the prediction by the realised cost. So the
// price follows observed spend, and predictions fill the gap only while
// requests are in flight (a request never observed keeps its prediction).
//
// Every charge or correction of c USD moves the tenant's price by
// Eta·(c − b)/b², b being the tenant's current per-request target: its
// per_request limit, or, when smaller, what its window has left divided by
// the requests the window is still expected to see (at the current
// window's pace, or the previous window's count if larger). Spending above the target raises
// the price until cheaper models win; spending below lowers it (never
// below 0). Summed over n requests the steps telescope: the mean spend
// exceeds b by at most b²·(final price)/(Eta·n), so the overshoot
// vanishes as the window fills. A window whose observed and predicted
// spend reached its limit is priced at maxBudgetPrice until it ends.
//
// A Budget is safe for concurrent use.
type Budget struct {
	spec BudgetSpec
	eta  float64

	mu      sync.Mutex
	tenants map[string]*tenantSpend
}

// tenantSpend is one tenant's price and window accounts.
type tenantSpend struct {
	price float64
	// The current window [start, start+Window): spend charged and
	// observed in it, requests in it, and the previous window's count
	// (-1: unknown).
	start time.Time
	spent float64
	n     int64
	prevN int64
}

// NewBudget validates s and builds its enforcer.
func NewBudget(s BudgetSpec) (*Budget, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Budget{spec: s.Clone(), eta: s.eta(), tenants: map[string]*tenantSpend{}}, nil
}

// Spec returns the budget's spec.
func (b *Budget) Spec() BudgetSpec { return b.spec.Clone() }

// limits are tenant's per-request and per-window limits (0 = none).
func (b *Budget) limits(tenant string) (perReq, limit float64) {
	perReq, limit = b.spec.PerRequest, b.spec.Limit
	if t, ok := b.spec.Tenants[tenant]; ok {
		if t.PerRequest != nil {
			perReq = *t.PerRequest
		}
		if t.Limit != nil {
			limit = *t.Limit
		}
	}
	return perReq, limit
}

// account returns tenant's accounts with its window rolled forward to t.
// b.mu is held.
func (b *Budget) account(tenant string, t time.Time) *tenantSpend {
	ts := b.tenants[tenant]
	if ts == nil {
		ts = &tenantSpend{prevN: -1}
		b.tenants[tenant] = ts
	}
	if w := b.spec.Window; w > 0 && !t.IsZero() {
		start := t.Truncate(w)
		if ts.start.IsZero() {
			ts.start = start
		} else if start.After(ts.start) {
			if start.Sub(ts.start) == w {
				ts.prevN = ts.n
			} else {
				ts.prevN = 0 // idle windows in between
			}
			ts.start, ts.spent, ts.n = start, 0, 0
		}
	}
	return ts
}

// inWindow reports whether t falls in ts's current window.
func (b *Budget) inWindow(ts *tenantSpend, t time.Time) bool {
	w := b.spec.Window
	return w > 0 && !t.IsZero() && !ts.start.IsZero() && !t.Before(ts.start) && t.Before(ts.start.Add(w))
}

// target is the per-request spend target at t (0: exhausted, +Inf: no
// limit). b.mu is held.
func (b *Budget) target(tenant string, ts *tenantSpend, t time.Time) float64 {
	perReq, limit := b.limits(tenant)
	tgt := math.Inf(1)
	if perReq > 0 {
		tgt = perReq
	}
	if limit > 0 && b.inWindow(ts, t) {
		left := limit - ts.spent
		if left <= 0 {
			return 0
		}
		w := b.spec.Window
		elapsed := max(t.Sub(ts.start), w/100)
		// The requests the window will see: at its pace so far, or as
		// many as the previous window saw if more (a window's first
		// minutes are a poor guide; a quieter window just spends less).
		expect := float64(ts.n+1) * float64(w) / float64(elapsed)
		if ts.prevN >= 0 {
			expect = max(float64(ts.prevN), expect)
		}
		tgt = min(tgt, left/max(1, expect-float64(ts.n)))
	}
	return tgt
}

// Price returns tenant's dual price at time t (quality per USD): 0 while
// it spends within its targets, maxBudgetPrice once its window's limit is
// reached.
func (b *Budget) Price(tenant string, t time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.account(tenant, t)
	if b.target(tenant, ts, t) == 0 {
		return maxBudgetPrice
	}
	return ts.price
}

// step moves ts's price by a spend of dc above (or below) its target tgt.
func (b *Budget) step(ts *tenantSpend, dc, tgt float64) {
	if math.IsInf(tgt, 1) || tgt <= 0 {
		// No limit applies now, or the window is exhausted: its price is
		// the cap until it ends, and the next window starts from the
		// price the spend so far earned.
		return
	}
	ts.price = min(maxBudgetPrice, max(0, ts.price+b.eta*dc/(tgt*tgt)))
}

// Charge records the predicted cost (USD) of a request of tenant arriving
// at t that the policy has just routed.
func (b *Budget) Charge(tenant string, t time.Time, predicted float64) {
	predicted = cleanCost(predicted)
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.account(tenant, t)
	tgt := b.target(tenant, ts, t)
	b.step(ts, predicted-tgt, tgt)
	if b.inWindow(ts, t) {
		ts.spent += predicted
		ts.n++
	}
}

// Observe records a completed request's realised cost (USD): charged says
// whether Charge recorded its prediction (predicted), which the realised
// cost then replaces; a request that was not charged (forced to a model,
// say) counts in full.
func (b *Budget) Observe(tenant string, t time.Time, charged bool, predicted, realised float64) {
	predicted, realised = cleanCost(predicted), cleanCost(realised)
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.account(tenant, t)
	tgt := b.target(tenant, ts, t)
	in := b.inWindow(ts, t)
	if charged {
		b.step(ts, realised-predicted, tgt)
		if in {
			ts.spent += realised - predicted
		}
		return
	}
	b.step(ts, realised-tgt, tgt)
	if in {
		ts.spent += realised
		ts.n++
	}
}

func cleanCost(c float64) float64 {
	if !(c >= 0) || math.IsInf(c, 1) {
		return 0
	}
	return c
}

// BudgetState is a Budget's learned state, per tenant, as snapshots hold
// it.
type BudgetState struct {
	Price float64 `json:"price,omitempty"`
	// Window* is the current window: its start, spend and requests, and
	// the previous window's requests (-1 unknown).
	WindowStart  time.Time `json:"window_start,omitzero"`
	Spent        float64   `json:"window_spent,omitempty"`
	Requests     int64     `json:"window_requests,omitempty"`
	PrevRequests int64     `json:"prev_window_requests"`
}

// State returns every tenant's state.
func (b *Budget) State() map[string]BudgetState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]BudgetState, len(b.tenants))
	for k, ts := range b.tenants {
		out[k] = BudgetState{Price: ts.price, WindowStart: ts.start, Spent: ts.spent, Requests: ts.n, PrevRequests: ts.prevN}
	}
	return out
}

// SetState replaces every tenant's state after checking it.
func (b *Budget) SetState(st map[string]BudgetState) error {
	tenants := make(map[string]*tenantSpend, len(st))
	for k, s := range st {
		if !(s.Price >= 0) || s.Price > maxBudgetPrice {
			return fmt.Errorf("budget state of tenant %q: price %v outside [0, %g]", k, s.Price, float64(maxBudgetPrice))
		}
		if !(s.Spent >= -1e-9) || math.IsInf(s.Spent, 1) || s.Requests < 0 || s.PrevRequests < -1 {
			return fmt.Errorf("budget state of tenant %q: window spend %v, %d requests, %d previous: must be >= 0", k, s.Spent, s.Requests, s.PrevRequests)
		}
		tenants[k] = &tenantSpend{price: s.Price, start: s.WindowStart, spent: max(0, s.Spent), n: s.Requests, prevN: s.PrevRequests}
	}
	b.mu.Lock()
	b.tenants = tenants
	b.mu.Unlock()
	return nil
}

// SpendObserver is implemented by policies that enforce a spend budget
// (LinearRouter): the decision core (route.Core.Complete) reports the
// realised cost of every completed request to the serving policy. routed
// says the policy's own Select chose the served model (and so charged
// its predicted cost), chosen is the model that was chosen.
type SpendObserver interface {
	ObserveSpend(f *decision.Features, chosen string, routed bool, cost float64)
}

// Budgeted is implemented by policies whose budget can be set after they
// are built — from a gateway config or a scenario's budget block applied
// to a policy loaded from an artifact. SetBudget keeps the tenants'
// learned prices and windows.
type Budgeted interface {
	SetBudget(s BudgetSpec) error
	BudgetSpec() BudgetSpec
}
