package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/routelab/routelab/decision"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// ErrBadVector is wrapped when a contextual policy gets no feature vector,
// one of the wrong length, or one with NaN/Inf entries (or beyond ±1e100).
var ErrBadVector = errors.New("bad feature vector")

// LinearOpts are the ridge-regression settings shared by the contextual
// policies (linucb, lin-thompson, egreedy-ridge).
type LinearOpts struct {
	// Dim is the feature vector length; 0 adopts the length of the first
	// vector seen, and any later vector of another length is an error.
	Dim int
	// Lambda is the ridge regulariser: every arm starts from A = λI, b = 0.
	// 0 means 1.
	Lambda float64
	// Refactor is how many Sherman–Morrison updates an arm takes before its
	// inverse is recomputed from A by a Cholesky factorisation; 0 means
	// 1000, and -1 disables it (tests only). With Gamma < 1 an arm is also
	// re-factorised whenever its effective regulariser has decayed below
	// λ/2 (see linModel.update).
	Refactor int
	// Gamma, in (0,1], discounts past data for non-stationary problems
	// (D-LinUCB, Russac et al. 2019): at every reward the policy receives,
	// every arm's data Σxxᵀ and Σrx are multiplied by Gamma, while the
	// regulariser λI stays; memory is about 1/(1−Gamma) rewards. 0 means 1
	// (no forgetting). See linModel.update for how A⁻¹ follows in O(d²).
	Gamma float64
}

func (o *LinearOpts) fill() error {
	if o.Dim < 0 || o.Dim > 4096 {
		return fmt.Errorf("dim %d outside [0,4096]", o.Dim)
	}
	if o.Lambda == 0 {
		o.Lambda = 1
	}
	if !(o.Lambda > 0) || !finite(o.Lambda) {
		return fmt.Errorf("lambda %v must be a finite number > 0", o.Lambda)
	}
	if o.Gamma == 0 {
		o.Gamma = 1
	}
	if !(o.Gamma > 0 && o.Gamma <= 1) {
		return fmt.Errorf("gamma %v outside (0,1]", o.Gamma)
	}
	if o.Refactor == 0 {
		o.Refactor = 1000
	}
	if o.Refactor < -1 {
		return fmt.Errorf("refactor %d must be >= 1 (or -1 for never)", o.Refactor)
	}
	return nil
}

func (o LinearOpts) params(ps Params) Params {
	ps["dim"] = strconv.Itoa(o.Dim)
	ps["lambda"] = ff(o.Lambda)
	ps["refactor"] = strconv.Itoa(o.Refactor)
	ps["gamma"] = ff(o.Gamma)
	return ps
}

// linArm is one arm's ridge regression: A = λI + Σ x xᵀ, b = Σ r x,
// θ = A⁻¹ b. ainv and a are full d×d row-major matrices; only the upper
// triangle of a is maintained (it is what the Cholesky factorisation reads).
type linArm struct {
	n     int64 // rewards seen
	since int   // Sherman–Morrison updates since the last re-factorisation
	// clock is the model clock when the arm's data was last discounted
	// (Gamma < 1 only; 0 otherwise).
	clock int64
	// lamEff is the regulariser that ainv and theta currently invert:
	// ainv = (D + lamEff·I)⁻¹ where A = D + λI. It equals λ except under
	// discounting between re-factorisations (see update).
	lamEff float64
	a      []float64
	ainv   []float64
	b      []float64
	theta  []float64
}

// linModel holds the per-arm ridge regressions of a contextual policy.
// Callers hold the owning policy's lock.
type linModel struct {
	name string
	o    LinearOpts
	dim  int

	index map[string]int
	arms  []*linArm
	ids   []string
	// clock counts rewards received (the discount clock when Gamma < 1).
	clock int64

	// scratch, sized to dim
	nz []int
	u  []float64

	chol    mat.Cholesky
	invTmp  *mat.SymDense
	refacts int64 // successful re-factorisations (diagnostics)

	// delta is what update added since the last takeDelta, per arm id
	// (Gamma = 1 only; see Mergeable).
	delta map[string]*linDelta
}

// linDelta is one arm's data added since the last takeDelta: the count,
// the upper triangle of Σxxᵀ (row-major d×d) and Σrx.
type linDelta struct {
	n float64
	a []float64
	b []float64
}

func newLinModel(name string, o LinearOpts) (*linModel, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	m := &linModel{name: name, o: o, index: map[string]int{}}
	if o.Dim > 0 {
		m.setDim(o.Dim)
	}
	return m, nil
}

func (m *linModel) setDim(d int) {
	m.dim = d
	m.nz = make([]int, 0, d)
	m.u = make([]float64, d)
}

// vector validates f's vector, adopting its length when the dimension is
// still open, and records its non-zero positions in m.nz.
func (m *linModel) vector(f *decision.Features) ([]float64, error) {
	if f == nil || len(f.Vector) == 0 {
		return nil, fmt.Errorf("%w: policy %s needs decision.Features.Vector (configure an Encoder); got none", ErrBadVector, m.name)
	}
	x := f.Vector
	if m.dim != 0 && len(x) != m.dim {
		return nil, fmt.Errorf("%w: policy %s expects %d dims, got %d", ErrBadVector, m.name, m.dim, len(x))
	}
	if len(x) > 4096 {
		return nil, fmt.Errorf("%w: policy %s: %d dims exceed 4096", ErrBadVector, m.name, len(x))
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxMagnitude {
			return nil, fmt.Errorf("%w: policy %s: Vector[%d] = %v", ErrBadVector, m.name, i, v)
		}
	}
	if m.dim == 0 {
		m.setDim(len(x))
	}
	m.nz = m.nz[:0]
	for i, v := range x {
		if v != 0 {
			m.nz = append(m.nz, i)
		}
	}
	return x, nil
}

// predict returns θ·x and xᵀA⁻¹x for arm id (the prior θ = 0, A = λI for
// an unseen arm). It reads only x's non-zero entries (m.nz), which for
// one-hot encodings is a small fraction of d.
func (m *linModel) predict(id string, x []float64) (mean, variance float64) {
	i, ok := m.index[id]
	if !ok {
		for _, j := range m.nz {
			variance += x[j] * x[j]
		}
		return 0, variance / m.o.Lambda
	}
	a := m.arms[i]
	mean, variance = m.predictArm(a, x)
	if m.o.Gamma < 1 && a.clock < m.clock {
		// Rewards to other arms since this arm's last update decayed its
		// data by g; under the same approximation as update, A⁻¹ grows by
		// 1/g and θ stays. The exact variance never exceeds the prior's.
		g := math.Pow(m.o.Gamma, float64(m.clock-a.clock))
		var prior float64
		for _, j := range m.nz {
			prior += x[j] * x[j]
		}
		variance = math.Min(variance/g, prior/m.o.Lambda)
	}
	return mean, variance
}

func (m *linModel) predictArm(a *linArm, x []float64) (mean, variance float64) {
	d := m.dim
	if 2*len(m.nz) > d {
		// Dense vector: u = A⁻¹x by gonum's Gemv beats the pairwise loop.
		blas64.Gemv(blas.NoTrans, 1, blas64.General{Rows: d, Cols: d, Stride: d, Data: a.ainv}, blas64.Vector{N: d, Data: x, Inc: 1}, 0, blas64.Vector{N: d, Data: m.u, Inc: 1})
		for j, xj := range x {
			mean += a.theta[j] * xj
			variance += xj * m.u[j]
		}
		return mean, math.Max(variance, 0)
	}
	for ii, j := range m.nz {
		xj := x[j]
		mean += a.theta[j] * xj
		row := a.ainv[j*d : j*d+d]
		variance += xj * xj * row[j]
		var s float64
		for _, k := range m.nz[ii+1:] {
			s += x[k] * row[k]
		}
		variance += 2 * xj * s
	}
	if variance < 0 {
		// Rounding only: A⁻¹ is positive definite.
		variance = 0
	}
	return mean, variance
}

// arm returns id's regression, creating it from the prior.
func (m *linModel) arm(id string) *linArm {
	if i, ok := m.index[id]; ok {
		return m.arms[i]
	}
	d := m.dim
	a := &linArm{a: make([]float64, d*d), ainv: make([]float64, d*d), b: make([]float64, d), theta: make([]float64, d), lamEff: m.o.Lambda}
	if m.o.Gamma < 1 {
		// A new arm has no data to discount: its clock starts now.
		a.clock = m.clock
	}
	for j := 0; j < d; j++ {
		a.a[j*d+j] = m.o.Lambda
		a.ainv[j*d+j] = 1 / m.o.Lambda
	}
	m.index[id] = len(m.arms)
	m.arms = append(m.arms, a)
	m.ids = append(m.ids, id)
	return a
}

// update adds (x, r) to arm id by a Sherman–Morrison rank-one update of A⁻¹
// (O(d²)) and the matching O(d) update of θ:
//
//	u = A⁻¹x, A⁻¹ ← A⁻¹ − u uᵀ/(1 + xᵀu), θ ← θ + u (r − θ·x)/(1 + xᵀu).
//
// Every Refactor updates A⁻¹ and θ are recomputed from A and b.
//
// With Gamma < 1 every reward advances the model clock, and an arm's data
// D = A − λI and b decay by g = Gamma^Δ over the Δ rewards since its last
// update: A ← g·(A − λI) + λI exactly, in O(d²). The exact new inverse
// would need O(d³), so A⁻¹ ← A⁻¹/g and θ unchanged instead, which is the
// exact inverse of D + g·lamEff·I: the regulariser decays with the data
// until a re-factorisation restores λ — done as soon as lamEff would fall
// below λ/2, so the effective ridge stays within a factor 2 of λ (for
// Gamma = 0.999 that is an O(d³) step per arm every ~700 rewards; for
// d = 32, K = 8 about 0.3 µs per update amortised) — and lamEff records
// it, so the state is always exactly described.
func (m *linModel) update(id string, x []float64, r float64) {
	m.clock++
	a := m.arm(id)
	d := m.dim
	if m.o.Gamma < 1 {
		if a.clock < m.clock {
			m.discount(a)
		}
		a.clock = m.clock
	}
	u := m.u
	for i := range u {
		u[i] = 0
	}
	// u = A⁻¹x as a sum of rows (A⁻¹ is symmetric) over x's non-zeros.
	for _, j := range m.nz {
		blas64.Axpy(x[j], blas64.Vector{N: d, Data: a.ainv[j*d : j*d+d], Inc: 1}, blas64.Vector{N: d, Data: u, Inc: 1})
	}
	var xu, pred float64
	for _, j := range m.nz {
		xu += x[j] * u[j]
		pred += x[j] * a.theta[j]
	}
	den := 1 + xu
	uv := blas64.Vector{N: d, Data: u, Inc: 1}
	blas64.Ger(-1/den, uv, uv, blas64.General{Rows: d, Cols: d, Stride: d, Data: a.ainv})
	blas64.Axpy((r-pred)/den, uv, blas64.Vector{N: d, Data: a.theta, Inc: 1})
	for ii, j := range m.nz {
		xj := x[j]
		a.b[j] += r * xj
		for _, k := range m.nz[ii:] {
			a.a[j*d+k] += xj * x[k]
		}
	}
	if m.o.Gamma == 1 {
		m.addDelta(id, x, r)
	}
	a.n++
	a.since++
	if m.o.Refactor > 0 && a.since >= m.o.Refactor {
		m.refactor(a)
	}
}

// discount applies the decay of the rewards since a's last update.
func (m *linModel) discount(a *linArm) {
	d := m.dim
	g := math.Pow(m.o.Gamma, float64(m.clock-a.clock))
	lam := m.o.Lambda
	for i := 0; i < d; i++ {
		row := a.a[i*d : i*d+d]
		row[i] = g*(row[i]-lam) + lam
		for j := i + 1; j < d; j++ {
			row[j] *= g
		}
		a.b[i] *= g
	}
	if g*a.lamEff < 0.5*lam {
		m.refactor(a)
		return
	}
	blas64.Scal(1/g, blas64.Vector{N: d * d, Data: a.ainv, Inc: 1})
	a.lamEff *= g
}

// refactor recomputes A⁻¹ from A by Cholesky (gonum) and θ = A⁻¹b, undoing
// the rounding that Sherman–Morrison updates accumulate. Cost O(d³/3)
// every Refactor updates. Should the factorisation fail (A is positive
// definite by construction, so only through overflow), the incremental
// inverse is kept.
func (m *linModel) refactor(a *linArm) {
	d := m.dim
	a.since = 0
	if !m.chol.Factorize(mat.NewSymDense(d, a.a)) {
		return
	}
	if m.invTmp == nil {
		m.invTmp = mat.NewSymDense(d, nil)
	}
	if err := m.chol.InverseTo(m.invTmp); err != nil {
		var c mat.Condition
		if !errors.As(err, &c) || math.IsInf(float64(c), 0) {
			return
		}
		// Ill-conditioned but computed: still better than drifted.
	}
	raw := m.invTmp.RawSymmetric()
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := raw.Data[i*raw.Stride+j]
			a.ainv[i*d+j] = v
			a.ainv[j*d+i] = v
		}
	}
	blas64.Gemv(blas.NoTrans, 1, blas64.General{Rows: d, Cols: d, Stride: d, Data: a.ainv}, blas64.Vector{N: d, Data: a.b, Inc: 1}, 0, blas64.Vector{N: d, Data: a.theta, Inc: 1})
	a.lamEff = m.o.Lambda
	m.refacts++
}

// linArmJSON is one arm's regression in a snapshot. A and AInv are full
// row-major d×d matrices (A symmetric).
type linArmJSON struct {
	ID    string `json:"id"`
	N     int64  `json:"n"`
	Since int    `json:"since"`
	// Clock and LambdaEff are the discount state (Gamma < 1); for
	// Gamma = 1 they are 0 and λ.
	Clock     int64     `json:"clock"`
	LambdaEff float64   `json:"lambda_eff"`
	A         []float64 `json:"a"`
	AInv      []float64 `json:"a_inv"`
	B         []float64 `json:"b"`
	Theta     []float64 `json:"theta"`
}

type linState struct {
	Dim   int          `json:"dim"`
	Clock int64        `json:"clock"`
	Arms  []linArmJSON `json:"arms"`
}

func (m *linModel) export() linState {
	st := linState{Dim: m.dim, Clock: m.clock, Arms: make([]linArmJSON, len(m.arms))}
	d := m.dim
	for i, a := range m.arms {
		full := make([]float64, d*d)
		for r := 0; r < d; r++ {
			for c := r; c < d; c++ {
				full[r*d+c] = a.a[r*d+c]
				full[c*d+r] = a.a[r*d+c]
			}
		}
		st.Arms[i] = linArmJSON{
			ID: m.ids[i], N: a.n, Since: a.since, Clock: a.clock, LambdaEff: a.lamEff, A: full,
			AInv: append([]float64(nil), a.ainv...), B: append([]float64(nil), a.b...), Theta: append([]float64(nil), a.theta...),
		}
	}
	return st
}

// importLin validates a saved state against m's settings and builds a new
// model from it; m is not modified.
func (m *linModel) importLin(st linState) (*linModel, error) {
	n := &linModel{name: m.name, o: m.o, index: map[string]int{}}
	if st.Dim < 0 || (m.o.Dim != 0 && st.Dim != m.o.Dim) || st.Dim > 4096 {
		return nil, fmt.Errorf("%w: dim %d, policy %s has dim %d", ErrSnapshot, st.Dim, m.name, m.o.Dim)
	}
	if st.Dim == 0 {
		if len(st.Arms) > 0 {
			return nil, fmt.Errorf("%w: dim 0 with %d arms", ErrSnapshot, len(st.Arms))
		}
		return n, nil
	}
	if st.Clock < 0 {
		return nil, fmt.Errorf("%w: clock %d negative", ErrSnapshot, st.Clock)
	}
	n.setDim(st.Dim)
	n.clock = st.Clock
	d := st.Dim
	for i, aj := range st.Arms {
		if aj.ID == "" {
			return nil, fmt.Errorf("%w: arms[%d]: empty id", ErrSnapshot, i)
		}
		if _, dup := n.index[aj.ID]; dup {
			return nil, fmt.Errorf("%w: arms[%d]: id %q twice", ErrSnapshot, i, aj.ID)
		}
		if len(aj.A) != d*d || len(aj.AInv) != d*d || len(aj.B) != d || len(aj.Theta) != d {
			return nil, fmt.Errorf("%w: arms[%d] %q: matrix sizes do not match dim %d", ErrSnapshot, i, aj.ID, d)
		}
		if aj.N < 0 || aj.Since < 0 || (m.o.Refactor > 0 && aj.Since >= m.o.Refactor) {
			return nil, fmt.Errorf("%w: arms[%d] %q: counts n=%d since=%d invalid", ErrSnapshot, i, aj.ID, aj.N, aj.Since)
		}
		if !finite(aj.A...) || !finite(aj.AInv...) || !finite(aj.B...) || !finite(aj.Theta...) {
			return nil, fmt.Errorf("%w: arms[%d] %q: non-finite entries", ErrSnapshot, i, aj.ID)
		}
		if aj.Clock < 0 || aj.Clock > st.Clock || !(aj.LambdaEff >= 0.5*m.o.Lambda && aj.LambdaEff <= m.o.Lambda) || (m.o.Gamma == 1 && aj.LambdaEff != m.o.Lambda) {
			return nil, fmt.Errorf("%w: arms[%d] %q: clock %d (model %d) or lambda_eff %v (lambda %v) invalid", ErrSnapshot, i, aj.ID, aj.Clock, st.Clock, aj.LambdaEff, m.o.Lambda)
		}
		// A⁻¹ inverts D + lamEff·I = A − (λ − lamEff)·I.
		shifted := append([]float64(nil), aj.A...)
		for j := 0; j < d; j++ {
			shifted[j*d+j] -= m.o.Lambda - aj.LambdaEff
		}
		if err := CheckInverse(shifted, aj.AInv, d); err != nil {
			return nil, fmt.Errorf("%w: arms[%d] %q: %w", ErrSnapshot, i, aj.ID, err)
		}
		a := &linArm{n: aj.N, since: aj.Since, clock: aj.Clock, lamEff: aj.LambdaEff, a: append([]float64(nil), aj.A...), ainv: append([]float64(nil), aj.AInv...), b: append([]float64(nil), aj.B...), theta: append([]float64(nil), aj.Theta...)}
		n.index[aj.ID] = len(n.arms)
		n.arms = append(n.arms, a)
		n.ids = append(n.ids, aj.ID)
	}
	return n, nil
}

// CheckInverse verifies that the d×d row-major matrix a is symmetric with a
// positive diagonal, ainv symmetric up to rounding, and a·ainv ≈ I, so that
// a corrupt snapshot cannot install a model whose confidence widths are
// meaningless. Restore of the linear policies and of policy/neural use it.
func CheckInverse(a, ainv []float64, d int) error {
	for i := 0; i < d; i++ {
		if a[i*d+i] <= 0 || ainv[i*d+i] <= 0 {
			return fmt.Errorf("diagonal entry %d of A or A⁻¹ not positive", i)
		}
		for j := i + 1; j < d; j++ {
			// A is exported exactly symmetric; A⁻¹'s rank-one updates round
			// its two triangles differently, by far less than this.
			tol := 1e-9 * (math.Abs(ainv[i*d+i]) + math.Abs(ainv[j*d+j]))
			if a[i*d+j] != a[j*d+i] || !(math.Abs(ainv[i*d+j]-ainv[j*d+i]) <= tol) {
				return fmt.Errorf("A or A⁻¹ not symmetric at (%d,%d)", i, j)
			}
		}
	}
	var prod mat.Dense
	prod.Mul(mat.NewDense(d, d, a), mat.NewDense(d, d, ainv))
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			want := 0.0
			if i == j {
				want = 1
			}
			if diff := math.Abs(prod.At(i, j) - want); !(diff <= 1e-6) {
				return fmt.Errorf("A·A⁻¹ differs from I by %g at (%d,%d)", diff, i, j)
			}
		}
	}
	return nil
}
