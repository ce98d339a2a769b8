package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Stats are a policy's sufficient statistics as named numbers. Every field
// is a sum over the rewards the policy learned from, so the statistics of
// several replicas of one policy merge by adding them field by field —
// except fields whose name starts with "!" (such as "!dim"), which describe
// the model's shape, are equal on every replica, and are set, not added.
//
// Field names, with the arm id always last so that ids may contain any
// character:
//
//	n:ID          rewards learned for the arm (count)
//	s:ID, q:ID    sum and sum of squares of those rewards (arm-table policies)
//	b:I:ID        Σ r·x[I] (linear policies)
//	a:I:J:ID      Σ x[I]·x[J] for I <= J, without the ridge λI (linear policies)
//	!dim          the feature dimension (linear policies)
type Stats map[string]float64

// Mergeable is implemented by policies whose learned state is a sum of
// per-reward contributions, so that replicas of the policy learning from
// different traffic can share what they learned without conflicts: each
// publishes its deltas (TakeDelta) to a shared store that adds them up,
// and installs the totals (SetShared). Order does not matter, so any
// interleaving of publishes gives the same totals.
//
// The arm-table policies (epsilon-greedy, ucb1, softmax, thompson and
// d-thompson with gamma 1) and the linear ones with gamma 1 (linucb,
// lin-thompson, egreedy-ridge) are mergeable. Discounted and windowed
// policies are not (their state depends on the order of rewards), and
// neither is policy/neural's; their MergeKey is "" and AsMergeable refuses
// them. Random generator states are never shared.
type Mergeable interface {
	// MergeKey names the policy and its parameters (the snapshot spec,
	// without seed): statistics are only merged between policies with the
	// same key. "" means the policy's state cannot be merged.
	MergeKey() string
	// Stats returns the complete statistics (whatever was restored or
	// learned), for publishing a policy's warm start once.
	Stats() Stats
	// TakeDelta returns what Update added since the previous TakeDelta
	// (or since the policy was built or restored) and starts a new delta.
	TakeDelta() Stats
	// SetShared replaces the learned state by shared — the totals of every
	// replica's published deltas — plus what Update added since the last
	// TakeDelta. It validates shared completely before changing anything.
	SetShared(shared Stats) error
}

// AsMergeable returns p, or the policy an exploration floor wraps, as a
// Mergeable whose MergeKey is not empty.
func AsMergeable(p Policy) (Mergeable, bool) {
	for p != nil {
		if m, ok := p.(Mergeable); ok {
			return m, m.MergeKey() != ""
		}
		f, ok := p.(*Floor)
		if !ok {
			return nil, false
		}
		p = f.Inner()
	}
	return nil, false
}

// StatsOf returns the statistics of p (unwrapping exploration floors) when
// p reports them, whether or not they can be merged.
func StatsOf(p Policy) (Stats, bool) {
	for p != nil {
		if m, ok := p.(interface{ Stats() Stats }); ok {
			return m.Stats(), true
		}
		f, ok := p.(*Floor)
		if !ok {
			return nil, false
		}
		p = f.Inner()
	}
	return nil, false
}

// ArmStat is one arm's summary in Stats.
type ArmStat struct {
	ID    string  `json:"id"`
	Count float64 `json:"count"`
	// Mean is the mean reward (arm-table policies only; NaN otherwise).
	Mean float64 `json:"-"`
}

// Arms returns the arms that have a count, sorted by id.
func (s Stats) Arms() []ArmStat {
	var out []ArmStat
	for k, n := range s {
		id, ok := strings.CutPrefix(k, "n:")
		if !ok {
			continue
		}
		a := ArmStat{ID: id, Count: n, Mean: math.NaN()}
		if sum, ok := s["s:"+id]; ok && n > 0 {
			a.Mean = sum / n
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Updates is the total count over the arms: the number of rewards learned.
func (s Stats) Updates() float64 {
	var t float64
	for k, n := range s {
		if strings.HasPrefix(k, "n:") {
			t += n
		}
	}
	return t
}

// add adds v to field k, leaving zeros out.
func (s Stats) add(k string, v float64) {
	if v != 0 {
		s[k] += v
	}
}

// Arm-table policies.

func addArm(st Stats, id string, a armStats) {
	st.add("n:"+id, a.n)
	st.add("s:"+id, a.sum)
	st.add("q:"+id, a.sumSq)
}

func (t *armTable) statsOf() Stats {
	st := Stats{}
	for i, a := range t.stats {
		addArm(st, t.ids[i], a)
	}
	return st
}

func (t *armTable) takeDelta() Stats {
	st := Stats{}
	for i := range t.delta {
		addArm(st, t.ids[i], t.delta[i])
		t.delta[i] = armStats{}
	}
	return st
}

// parseArmStats reads an arm-table policy's shared statistics.
func parseArmStats(shared Stats, check func(armStats) error) (map[string]armStats, error) {
	arms := map[string]armStats{}
	for k, v := range shared {
		if strings.HasPrefix(k, "!") {
			continue
		}
		kind, id, ok := strings.Cut(k, ":")
		if !ok || id == "" || (kind != "n" && kind != "s" && kind != "q") {
			return nil, fmt.Errorf("shared statistics: field %q is not n:ID, s:ID or q:ID", k)
		}
		if !finite(v) {
			return nil, fmt.Errorf("shared statistics: field %q = %v not finite", k, v)
		}
		a := arms[id]
		switch kind {
		case "n":
			a.n = v
		case "s":
			a.sum = v
		case "q":
			a.sumSq = v
		}
		arms[id] = a
	}
	for id, a := range arms {
		if a.n < 0 || a.sumSq < 0 {
			return nil, fmt.Errorf("shared statistics: arm %q: n=%v sum_sq=%v negative", id, a.n, a.sumSq)
		}
		if check != nil {
			if err := check(a); err != nil {
				return nil, fmt.Errorf("shared statistics: arm %q: %w", id, err)
			}
		}
	}
	return arms, nil
}

// setShared installs shared plus the current delta. Callers hold the
// owner's lock.
func (t *armTable) setShared(shared Stats, check func(armStats) error) error {
	arms, err := parseArmStats(shared, check)
	if err != nil {
		return err
	}
	copy(t.stats, t.delta)
	ids := make([]string, 0, len(arms))
	for id := range arms {
		ids = append(ids, id)
	}
	sort.Strings(ids) // new arms get slots in a deterministic order
	for _, id := range ids {
		a, s := arms[id], &t.stats[t.slot(id)]
		s.n += a.n
		s.sum += a.sum
		s.sumSq += a.sumSq
	}
	return nil
}

// MergeKey implements Mergeable.
func (p *EpsilonGreedy) MergeKey() string { return p.spec().String() }

// Stats implements Mergeable.
func (p *EpsilonGreedy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.statsOf()
}

// TakeDelta implements Mergeable.
func (p *EpsilonGreedy) TakeDelta() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.takeDelta()
}

// SetShared implements Mergeable.
func (p *EpsilonGreedy) SetShared(shared Stats) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.setShared(shared, nil)
}

// MergeKey implements Mergeable.
func (p *UCB1) MergeKey() string { return p.spec().String() }

// Stats implements Mergeable.
func (p *UCB1) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.statsOf()
}

// TakeDelta implements Mergeable.
func (p *UCB1) TakeDelta() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.takeDelta()
}

// SetShared implements Mergeable.
func (p *UCB1) SetShared(shared Stats) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.setShared(shared, nil)
}

// MergeKey implements Mergeable.
func (p *Softmax) MergeKey() string { return p.spec().String() }

// Stats implements Mergeable.
func (p *Softmax) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.statsOf()
}

// TakeDelta implements Mergeable.
func (p *Softmax) TakeDelta() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.takeDelta()
}

// SetShared implements Mergeable.
func (p *Softmax) SetShared(shared Stats) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.setShared(shared, nil)
}

// MergeKey implements Mergeable; "" for a discounted sampler (gamma < 1).
func (p *Thompson) MergeKey() string {
	if p.gamma < 1 {
		return ""
	}
	return p.spec().String()
}

// Stats implements Mergeable (for a discounted sampler, the discounted
// statistics).
func (p *Thompson) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.statsOf()
}

// TakeDelta implements Mergeable.
func (p *Thompson) TakeDelta() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.takeDelta()
}

// SetShared implements Mergeable.
func (p *Thompson) SetShared(shared Stats) error {
	if p.gamma < 1 {
		return fmt.Errorf("policy %s: discounted statistics cannot be merged", p.name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arms.setShared(shared, p.checkArm)
}

// Linear policies.

// addDelta records (x, r) for arm id in the delta. Callers hold the lock
// and have set m.nz for x.
func (m *linModel) addDelta(id string, x []float64, r float64) {
	if m.delta == nil {
		m.delta = map[string]*linDelta{}
	}
	d := m.dim
	dl := m.delta[id]
	if dl == nil {
		dl = &linDelta{a: make([]float64, d*d), b: make([]float64, d)}
		m.delta[id] = dl
	}
	dl.n++
	for ii, j := range m.nz {
		xj := x[j]
		dl.b[j] += r * xj
		for _, k := range m.nz[ii:] {
			dl.a[j*d+k] += xj * x[k]
		}
	}
}

func addLin(st Stats, id string, d int, n float64, a, b []float64, lambda float64) {
	st.add("n:"+id, n)
	si := ":" + id
	for i := 0; i < d; i++ {
		st.add("b:"+strconv.Itoa(i)+si, b[i])
		for j := i; j < d; j++ {
			v := a[i*d+j]
			if i == j {
				v -= lambda
			}
			st.add("a:"+strconv.Itoa(i)+":"+strconv.Itoa(j)+si, v)
		}
	}
}

func (m *linModel) statsOf() Stats {
	st := Stats{}
	if m.dim == 0 {
		return st
	}
	st["!dim"] = float64(m.dim)
	for i, a := range m.arms {
		addLin(st, m.ids[i], m.dim, float64(a.n), a.a, a.b, m.o.Lambda)
	}
	return st
}

func (m *linModel) takeDelta() Stats {
	st := Stats{}
	if m.dim == 0 {
		return st
	}
	st["!dim"] = float64(m.dim)
	ids := make([]string, 0, len(m.delta))
	for id := range m.delta {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		dl := m.delta[id]
		addLin(st, id, m.dim, dl.n, dl.a, dl.b, 0)
	}
	m.delta = nil
	return st
}

// setShared rebuilds every arm's regression from shared plus the delta:
// A = λI + shared + delta (upper triangle), b likewise, then A⁻¹ and θ by
// a Cholesky re-factorisation. Nothing changes unless shared is valid.
func (m *linModel) setShared(shared Stats) error {
	if m.o.Gamma < 1 {
		return fmt.Errorf("policy %s: discounted statistics cannot be merged", m.name)
	}
	dim := m.dim
	if v, ok := shared["!dim"]; ok {
		if v != math.Trunc(v) || v < 1 || v > 4096 || (dim != 0 && int(v) != dim) || (m.o.Dim != 0 && int(v) != m.o.Dim) {
			return fmt.Errorf("shared statistics: !dim %v, policy %s has dim %d", v, m.name, dim)
		}
		dim = int(v)
	}
	type sums struct {
		n    float64
		a, b []float64
	}
	arms := map[string]*sums{}
	get := func(id string) *sums {
		s := arms[id]
		if s == nil {
			s = &sums{a: make([]float64, dim*dim), b: make([]float64, dim)}
			arms[id] = s
		}
		return s
	}
	index := func(k, f string) (int, error) {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 || i >= dim {
			return 0, fmt.Errorf("shared statistics: field %q: index %q outside [0,%d)", k, f, dim)
		}
		return i, nil
	}
	for k, v := range shared {
		if strings.HasPrefix(k, "!") {
			continue
		}
		if !finite(v) {
			return fmt.Errorf("shared statistics: field %q = %v not finite", k, v)
		}
		if dim == 0 {
			return fmt.Errorf("shared statistics: field %q without !dim", k)
		}
		switch {
		case strings.HasPrefix(k, "n:") && len(k) > 2:
			if v < 0 {
				return fmt.Errorf("shared statistics: field %q = %v negative", k, v)
			}
			get(k[2:]).n = v
		case strings.HasPrefix(k, "b:"):
			f := strings.SplitN(k, ":", 3)
			if len(f) != 3 || f[2] == "" {
				return fmt.Errorf("shared statistics: field %q is not b:I:ID", k)
			}
			i, err := index(k, f[1])
			if err != nil {
				return err
			}
			get(f[2]).b[i] = v
		case strings.HasPrefix(k, "a:"):
			f := strings.SplitN(k, ":", 4)
			if len(f) != 4 || f[3] == "" {
				return fmt.Errorf("shared statistics: field %q is not a:I:J:ID", k)
			}
			i, err := index(k, f[1])
			if err != nil {
				return err
			}
			j, err := index(k, f[2])
			if err != nil {
				return err
			}
			if j < i {
				return fmt.Errorf("shared statistics: field %q below the diagonal", k)
			}
			get(f[3]).a[i*dim+j] = v
		default:
			return fmt.Errorf("shared statistics: field %q is not n:ID, b:I:ID or a:I:J:ID", k)
		}
	}
	if dim == 0 {
		return nil // nothing shared, nothing learned
	}
	if m.dim == 0 {
		m.setDim(dim)
	}
	ids := append([]string(nil), m.ids...)
	for id := range arms {
		if _, ok := m.index[id]; !ok {
			ids = append(ids, id)
		}
	}
	for id := range m.delta {
		if _, ok := m.index[id]; !ok {
			if _, ok := arms[id]; !ok {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids[len(m.ids):])
	lam := m.o.Lambda
	for _, id := range ids {
		a := m.arm(id)
		for i := range a.a {
			a.a[i] = 0
		}
		for i := 0; i < dim; i++ {
			a.a[i*dim+i] = lam
			a.b[i] = 0
		}
		var n float64
		if s := arms[id]; s != nil {
			n += s.n
			for i := range a.b {
				a.b[i] += s.b[i]
			}
			for i := range a.a {
				a.a[i] += s.a[i]
			}
		}
		if dl := m.delta[id]; dl != nil {
			n += dl.n
			for i := range a.b {
				a.b[i] += dl.b[i]
			}
			for i := range a.a {
				a.a[i] += dl.a[i]
			}
		}
		a.n = int64(math.Round(n))
		a.clock, a.lamEff = 0, lam
		m.refactor(a)
	}
	return nil
}

// Stats implements Mergeable.
func (b *linBase) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.statsOf()
}

// TakeDelta implements Mergeable.
func (b *linBase) TakeDelta() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.takeDelta()
}

// SetShared implements Mergeable.
func (b *linBase) SetShared(shared Stats) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.setShared(shared)
}

func (b *linBase) mergeKey(s Spec) string {
	if b.m.o.Gamma < 1 {
		return ""
	}
	return s.String()
}

// MergeKey implements Mergeable; "" with gamma < 1.
func (p *LinUCB) MergeKey() string { return p.mergeKey(p.spec()) }

// MergeKey implements Mergeable; "" with gamma < 1.
func (p *LinThompson) MergeKey() string { return p.mergeKey(p.spec()) }

// MergeKey implements Mergeable; "" with gamma < 1.
func (p *EGreedyRidge) MergeKey() string { return p.mergeKey(p.spec()) }

var (
	_ Mergeable = (*EpsilonGreedy)(nil)
	_ Mergeable = (*UCB1)(nil)
	_ Mergeable = (*Softmax)(nil)
	_ Mergeable = (*Thompson)(nil)
	_ Mergeable = (*LinUCB)(nil)
	_ Mergeable = (*LinThompson)(nil)
	_ Mergeable = (*EGreedyRidge)(nil)
)

// SpecOf returns the registry spec (name and parameters, without seed)
// that p's snapshots record, for rebuilding an equivalent policy
// elsewhere; false when p does not report one.
func SpecOf(p Policy) (Spec, bool) {
	switch s := p.(type) {
	case speccer:
		return s.spec(), true
	case SpecReporter:
		return s.Spec(), true
	}
	return Spec{}, false
}
