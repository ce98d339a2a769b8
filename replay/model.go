package replay

import (
	"fmt"
	"math"

	"github.com/routelab/routelab/decision"
	"gonum.org/v1/gonum/mat"
)

// RewardModel estimates the expected reward of every candidate of a logged
// request, q̂(x, a), for the model-based estimators (DM, DR, SNDR,
// Switch-DR, DR-OS). The evaluator feeds it training rows with Observe,
// calls Fit once, then calls Predict. A model is used by one goroutine.
type RewardModel interface {
	// Observe learns from one logged row: the reward of the chosen arm.
	Observe(rec *decision.Record) error
	// Fit finishes training; Predict is called only after it.
	Fit() error
	// Predict writes q̂ for every candidate of rec into q[:len(candidates)].
	Predict(rec *decision.Record, q []float64) error
}

// ModelFunc is a fixed reward model: Observe and Fit do nothing and Predict
// calls the function. Use it for a model trained elsewhere, or for the
// simulator's true expected rewards.
type ModelFunc func(rec *decision.Record, q []float64) error

// Observe implements RewardModel; a fixed model learns nothing.
func (ModelFunc) Observe(*decision.Record) error { return nil }

// Fit implements RewardModel.
func (ModelFunc) Fit() error { return nil }

// Predict implements RewardModel.
func (f ModelFunc) Predict(rec *decision.Record, q []float64) error { return f(rec, q) }

// Ridge is the default reward model: one regression per arm id.
//
// When the logged requests carry a dense feature vector (Features.Vector),
// it is a ridge regression of the reward on [1, vector] per arm, with the
// intercept not penalised and penalty Lambda on the other coefficients.
//
// When they carry none (a context-free log), the features are the task
// type: q̂(x, a) = (Σ rewards of a on task(x) + Lambda·mean(a)) / (count +
// Lambda), the arm-and-task mean shrunk towards the arm's overall mean —
// ridge-style shrinkage of a one-hot task encoding. Tasks absent from
// training get the arm's mean.
//
// Arms never seen in training get the mean reward of all training rows.
// Mixing rows with and without vectors, or vectors of different lengths, is
// an error. The zero value is ready to use with Lambda 1.
type Ridge struct {
	// Lambda is the penalty; 0 means 1.
	Lambda float64

	mode   int // 0: nothing seen yet, modeVector, modeTask
	dim    int // len(vector)+1 in vector mode
	arms   map[string]*ridgeArm
	n, sum float64
	fitted bool
}

const (
	modeVector = 1
	modeTask   = 2
)

type ridgeArm struct {
	n, sum float64
	xtx    []float64 // dim×dim, row-major (vector mode)
	xty    []float64
	theta  []float64
	tasks  map[string]*cell // task mode
}

type cell struct{ n, sum float64 }

var _ RewardModel = (*Ridge)(nil)

func (m *Ridge) lambda() float64 {
	if m.Lambda <= 0 {
		return 1
	}
	return m.Lambda
}

func (m *Ridge) setMode(rec *decision.Record) error {
	v := rec.Request.Features.Vector
	want := modeTask
	if len(v) > 0 {
		want = modeVector
	}
	switch {
	case m.mode == 0:
		m.mode = want
		m.dim = len(v) + 1
		m.arms = map[string]*ridgeArm{}
	case m.mode != want:
		return fmt.Errorf("reward model: row has %d features but earlier rows had %d (mixed logs with and without feature vectors)", len(v), m.dim-1)
	case want == modeVector && len(v)+1 != m.dim:
		return fmt.Errorf("reward model: feature vector of length %d, earlier rows had %d", len(v), m.dim-1)
	}
	return nil
}

// Observe implements RewardModel.
func (m *Ridge) Observe(rec *decision.Record) error {
	if m.fitted {
		return fmt.Errorf("reward model: Observe after Fit")
	}
	if err := m.setMode(rec); err != nil {
		return err
	}
	d := &rec.Decision
	id := d.Candidates[d.Chosen].ID
	a := m.arms[id]
	if a == nil {
		a = &ridgeArm{}
		if m.mode == modeVector {
			a.xtx = make([]float64, m.dim*m.dim)
			a.xty = make([]float64, m.dim)
		} else {
			a.tasks = map[string]*cell{}
		}
		m.arms[id] = a
	}
	r := rec.Reward
	a.n++
	a.sum += r
	m.n++
	m.sum += r
	if m.mode == modeTask {
		c := a.tasks[rec.Request.Features.Task]
		if c == nil {
			c = &cell{}
			a.tasks[rec.Request.Features.Task] = c
		}
		c.n++
		c.sum += r
		return nil
	}
	v := rec.Request.Features.Vector
	dim := m.dim
	// φ = [1, v]; accumulate the upper triangle of φφᵀ and φ·r.
	a.xty[0] += r
	a.xtx[0]++
	for j, vj := range v {
		if math.IsNaN(vj) || math.IsInf(vj, 0) {
			return fmt.Errorf("reward model: feature %d is %v", j, vj)
		}
		a.xty[j+1] += vj * r
		a.xtx[j+1] += vj // row 0
		row := a.xtx[(j+1)*dim:]
		for k := j; k < len(v); k++ {
			row[k+1] += vj * v[k]
		}
	}
	return nil
}

// Fit implements RewardModel: it solves each arm's normal equations.
func (m *Ridge) Fit() error {
	if m.fitted {
		return nil
	}
	m.fitted = true
	if m.mode != modeVector {
		return nil
	}
	lam := m.lambda()
	dim := m.dim
	for id, a := range m.arms {
		sym := mat.NewSymDense(dim, nil)
		for i := 0; i < dim; i++ {
			for j := i; j < dim; j++ {
				sym.SetSym(i, j, a.xtx[i*dim+j])
			}
			if i > 0 {
				sym.SetSym(i, i, sym.At(i, i)+lam)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(sym) {
			return fmt.Errorf("reward model: normal equations of arm %q are not positive definite", id)
		}
		var theta mat.VecDense
		if err := ch.SolveVecTo(&theta, mat.NewVecDense(dim, append([]float64(nil), a.xty...))); err != nil {
			return fmt.Errorf("reward model: solve for arm %q: %w", id, err)
		}
		a.theta = make([]float64, dim)
		for i := range a.theta {
			a.theta[i] = theta.AtVec(i)
		}
		a.xtx = nil // the solution is all Predict needs
	}
	return nil
}

// Predict implements RewardModel.
func (m *Ridge) Predict(rec *decision.Record, q []float64) error {
	if !m.fitted {
		return fmt.Errorf("reward model: Predict before Fit")
	}
	global := 0.0
	if m.n > 0 {
		global = m.sum / m.n
	}
	cands := rec.Decision.Candidates
	f := &rec.Request.Features
	if m.mode == modeVector && len(f.Vector)+1 != m.dim {
		return fmt.Errorf("reward model: feature vector of length %d, trained on %d", len(f.Vector), m.dim-1)
	}
	lam := m.lambda()
	for i := range cands {
		a := m.arms[cands[i].ID]
		if a == nil || a.n == 0 {
			q[i] = global
			continue
		}
		if m.mode == modeTask {
			mean := a.sum / a.n
			c := a.tasks[f.Task]
			if c == nil {
				q[i] = mean
				continue
			}
			q[i] = (c.sum + lam*mean) / (c.n + lam)
			continue
		}
		v := a.theta[0]
		for j, x := range f.Vector {
			v += a.theta[j+1] * x
		}
		q[i] = v
	}
	return nil
}

// bootGroups is the number of random row groups of the grouped bootstrap.
const bootGroups = 256

// groupedMinRows is the smallest log on which the grouped bootstrap is used;
// smaller logs resample rows (fast enough there). At 3,000 rows (about 12
// a group) the grouped intervals of a biased dm covered 0.87 in
// `make test-long`'s opebench run, against 0.91 for the row bootstrap.
const groupedMinRows = 50_000

// groupOf assigns row i to a bootstrap group, a pure function of (seed, i).
func groupOf(seed uint64, i int64) int {
	return int(splitmix(splitmix(seed^0x67b00757)^uint64(i)) % bootGroups)
}

// ridgeGroups holds the sufficient statistics of the Ridge reward model in
// vector mode per (arm, group, fold of the row): Σφφᵀ (upper triangle),
// Σφr, count and Σr, with φ = [1, vector]. A bootstrap resample that
// weights the groups refits every fold's model from weighted sums of these
// exactly as Ridge would on the resample's rows.
type ridgeGroups struct {
	lambda float64
	dim    int
	folds  int
	ok     bool           // every row had a finite vector of length dim-1
	arms   map[string]int // arm id → index (all candidates)
	stats  [][]float64    // [arm][(group·folds+fold)·blk + ...]
	phi    []float64
}

func (rg *ridgeGroups) blk() int { return rg.dim*rg.dim + rg.dim + 2 }

func newRidgeGroups(lambda float64, folds int) *ridgeGroups {
	return &ridgeGroups{lambda: lambda, folds: folds, ok: true, arms: map[string]int{}}
}

// register registers every candidate of rec.
func (rg *ridgeGroups) register(rec *decision.Record) {
	for _, cd := range rec.Decision.Candidates {
		if _, ok := rg.arms[cd.ID]; !ok {
			rg.arms[cd.ID] = len(rg.arms)
		}
	}
}

func (rg *ridgeGroups) observe(rec *decision.Record, g, f int) {
	if !rg.ok {
		return
	}
	v := rec.Request.Features.Vector
	if rg.dim == 0 {
		rg.dim = len(v) + 1
		rg.phi = make([]float64, rg.dim)
	}
	if len(v) == 0 || len(v)+1 != rg.dim {
		rg.ok = false
		return
	}
	rg.phi[0] = 1
	for j, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			rg.ok = false
			return
		}
		rg.phi[j+1] = x
	}
	rg.register(rec)
	a := rg.arms[rec.Decision.Candidates[rec.Decision.Chosen].ID]
	for len(rg.stats) <= a {
		rg.stats = append(rg.stats, nil)
	}
	if rg.stats[a] == nil {
		rg.stats[a] = make([]float64, bootGroups*rg.folds*rg.blk())
	}
	dim, r := rg.dim, rec.Reward
	s := rg.stats[a][(g*rg.folds+f)*rg.blk():]
	for i := 0; i < dim; i++ {
		row := s[i*dim:]
		for j := i; j < dim; j++ {
			row[j] += rg.phi[i] * rg.phi[j]
		}
		s[dim*dim+i] += rg.phi[i] * r
	}
	s[dim*dim+dim]++
	s[dim*dim+dim+1] += r
}

// fit returns, for bootstrap group weights cg, the coefficients of every
// fold's model: theta[fold][arm] (dim values, the intercept holding the
// global mean for arms the resample never saw chosen).
func (rg *ridgeGroups) fit(cg []float64, theta [][][]float64) error {
	dim, blk := rg.dim, rg.blk()
	agg := make([]float64, blk)
	sym := mat.NewSymDense(dim, nil)
	for k := range theta {
		var gn, gs float64
		fitted := make([]bool, len(rg.arms))
		for a := 0; a < len(rg.arms); a++ {
			th := theta[k][a]
			clear(th)
			if a >= len(rg.stats) || rg.stats[a] == nil {
				continue
			}
			clear(agg)
			for g, c := range cg {
				if c == 0 {
					continue
				}
				for f := 0; f < rg.folds; f++ {
					if f == k && rg.folds > 1 {
						continue
					}
					s := rg.stats[a][(g*rg.folds+f)*blk:][:blk]
					for i, x := range s {
						agg[i] += c * x
					}
				}
			}
			n, sum := agg[dim*dim+dim], agg[dim*dim+dim+1]
			gn += n
			gs += sum
			if n == 0 {
				continue
			}
			for i := 0; i < dim; i++ {
				for j := i; j < dim; j++ {
					sym.SetSym(i, j, agg[i*dim+j])
				}
				if i > 0 {
					sym.SetSym(i, i, sym.At(i, i)+rg.lambda)
				}
			}
			var ch mat.Cholesky
			if !ch.Factorize(sym) {
				return fmt.Errorf("reward model: normal equations of arm %d are not positive definite", a)
			}
			var sol mat.VecDense
			if err := ch.SolveVecTo(&sol, mat.NewVecDense(dim, append([]float64(nil), agg[dim*dim:dim*dim+dim]...))); err != nil {
				return fmt.Errorf("reward model: solve for arm %d: %w", a, err)
			}
			for i := range th {
				th[i] = sol.AtVec(i)
			}
			fitted[a] = true
		}
		global := 0.0
		if gn > 0 {
			global = gs / gn
		}
		for a, ok := range fitted {
			if !ok {
				theta[k][a][0] = global
			}
		}
	}
	return nil
}
