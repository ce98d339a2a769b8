package datasets

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/routelab/routelab/policy"
	"gonum.org/v1/gonum/optimize"
)

// Learners are the full-information quality predictors HeldOut fits: one
// model per LLM predicting its score on a prompt from the encoded
// features.
//
//	task-mean  the model's mean score on the training prompts of the task
//	           (the simple baseline: routing by task alone)
//	logistic   L2-regularised logistic regression on the features (scores
//	           as soft labels)
//	ridge      L2-regularised least squares on the features
//	knn        mean score of the k most cosine-similar training prompts
//	ridge-task, logistic-task
//	           one ridge / logistic model per task and LLM (the text
//	           features weigh differently per task)
//	ensemble   the mean of logistic-task, ridge-task and knn's predictions
//	mf         RouteLLM-style matrix factorisation: a learned embedding per
//	           model against a learned linear projection of the features,
//	           score σ(v_m·P x + b_m), fitted by seeded minibatch Adam (its
//	           dimension, L2 and epochs chosen on validation)
var Learners = []string{"task-mean", "logistic", "ridge", "knn", "logistic-task", "ridge-task", "ensemble", "mf"}

// spVec is a sparse feature vector.
type spVec struct {
	idx []int32
	val []float64
}

func (v spVec) dot(w []float64) float64 {
	s := 0.0
	for j, i := range v.idx {
		s += v.val[j] * w[i]
	}
	return s
}

// encodeRows encodes every row of t with enc into sparse vectors.
func encodeRows(t *Table, enc *policy.FeatureEncoder) []spVec {
	out := make([]spVec, len(t.Rows))
	var buf []float64
	for r := range t.Rows {
		row := &t.Rows[r]
		f := rowFeatures(row)
		buf = enc.Encode(&f, buf)
		var v spVec
		for i, x := range buf {
			if x != 0 {
				v.idx = append(v.idx, int32(i))
				v.val = append(v.val, x)
			}
		}
		out[r] = v
	}
	return out
}

// predictor predicts, for every row of a table, every model's quality.
type predictor interface {
	// predict fills q (len = models) for test row x (its task given).
	predict(x spVec, task string, q []float64)
}

// hyper is one hyper-parameter value of a learner, chosen on validation.
type hyper struct {
	name  string
	value float64
	// mf is the whole setting of the mf learner (name and value unused).
	mf *mfOpts
}

// String names the setting ("l2=0.001"; "" for none).
func (h hyper) String() string {
	switch {
	case h.mf != nil:
		return h.mf.String()
	case h.name == "":
		return ""
	}
	return fmt.Sprintf("%s=%g", h.name, h.value)
}

// mfGrid are the mf settings tried on validation (seed 1: a fit is
// deterministic). More epochs or less L2 overfit RouterBench's 0/1 scores
// (validation error measured on seed 1's training part).
func mfGrid() []hyper {
	var g []hyper
	for _, dim := range []int{8, 16} {
		for _, l2 := range []float64{1e-4, 1e-3, 1e-2} {
			for _, ep := range []int{10, 30} {
				g = append(g, hyper{mf: &mfOpts{Dim: dim, L2: l2, Epochs: ep, Seed: 1}})
			}
		}
	}
	return g
}

// learnerGrid lists the hyper-parameter values tried on the validation
// part of the training data.
func learnerGrid(name string) ([]hyper, error) {
	switch name {
	case "task-mean":
		return []hyper{{}}, nil
	case "logistic":
		return []hyper{{name: "l2", value: 1e-4}, {name: "l2", value: 1e-3}, {name: "l2", value: 1e-2}}, nil
	case "ridge":
		return []hyper{{name: "l2", value: 1e-3}, {name: "l2", value: 1e-2}, {name: "l2", value: 1e-1}}, nil
	case "knn":
		return []hyper{{name: "k", value: 10}, {name: "k", value: 25}, {name: "k", value: 50}}, nil
	case "logistic-task":
		return []hyper{{name: "l2", value: 1e-3}, {name: "l2", value: 1e-2}, {name: "l2", value: 3e-2}}, nil
	case "ridge-task":
		return []hyper{{name: "l2", value: 1e-2}, {name: "l2", value: 3e-2}, {name: "l2", value: 1e-1}}, nil
	case "ensemble":
		return []hyper{{name: "scale", value: 1}}, nil
	case "mf":
		return mfGrid(), nil
	}
	return nil, fmt.Errorf("learner %q: unknown (known: %v)", name, Learners)
}

// fitLearner fits learner name with hyper-parameter h on rows X of t.
func fitLearner(name string, h hyper, t *Table, X []spVec, dim int) (predictor, error) {
	switch name {
	case "task-mean":
		return fitTaskMean(t), nil
	case "logistic", "ridge":
		return fitLinear(t, X, dim, name == "logistic", h.value)
	case "knn":
		return newKNN(t, X, int(h.value)), nil
	case "logistic-task", "ridge-task":
		return fitPerTask(t, X, dim, name == "logistic-task", h.value)
	case "mf":
		if h.mf == nil {
			return nil, fmt.Errorf("learner mf: no setting")
		}
		return fitMF(t, X, dim, *h.mf)
	case "ensemble":
		// Fixed member hyper-parameters (the middle of each grid), so the
		// ensemble needs no validation of its own.
		var e ensemble
		for _, m := range []struct {
			name string
			h    hyper
		}{{"logistic-task", hyper{name: "l2", value: 1e-2}}, {"ridge-task", hyper{name: "l2", value: 3e-2}}, {"knn", hyper{name: "k", value: 25}}} {
			p, err := fitLearner(m.name, m.h, t, X, dim)
			if err != nil {
				return nil, err
			}
			e = append(e, p)
		}
		return e, nil
	}
	return nil, fmt.Errorf("learner %q: unknown (known: %v)", name, Learners)
}

// ensemble averages its members' predictions.
type ensemble []predictor

func (e ensemble) predict(x spVec, task string, q []float64) {
	tmp := make([]float64, len(q))
	for m := range q {
		q[m] = 0
	}
	for _, p := range e {
		p.predict(x, task, tmp)
		for m := range q {
			q[m] += tmp[m] / float64(len(e))
		}
	}
}

// perTask is one linear model per task (a global one for unseen tasks).
type perTask struct {
	byTask map[string]*linear
	all    *linear
}

func fitPerTask(t *Table, X []spVec, dim int, logistic bool, l2 float64) (*perTask, error) {
	pt := &perTask{byTask: map[string]*linear{}}
	var err error
	if pt.all, err = fitLinear(t, X, dim, logistic, l2); err != nil {
		return nil, err
	}
	for _, task := range t.Tasks() {
		var idx []int
		for r := range t.Rows {
			if t.Rows[r].Task == task {
				idx = append(idx, r)
			}
		}
		sub := t.subset(idx, task)
		xs := make([]spVec, len(idx))
		for j, r := range idx {
			xs[j] = X[r]
		}
		if pt.byTask[task], err = fitLinear(sub, xs, dim, logistic, l2); err != nil {
			return nil, err
		}
	}
	return pt, nil
}

func (pt *perTask) predict(x spVec, task string, q []float64) {
	l, ok := pt.byTask[task]
	if !ok {
		l = pt.all
	}
	l.predict(x, task, q)
}

// taskMean predicts a model's mean training score on the row's task (its
// overall mean for an unseen task).
type taskMean struct {
	byTask map[string][]float64
	all    []float64
}

func fitTaskMean(t *Table) *taskMean {
	k := len(t.Models)
	tm := &taskMean{byTask: map[string][]float64{}, all: make([]float64, k)}
	n := map[string]float64{}
	for r := range t.Rows {
		row := &t.Rows[r]
		s := tm.byTask[row.Task]
		if s == nil {
			s = make([]float64, k)
			tm.byTask[row.Task] = s
		}
		for m, v := range row.Scores {
			s[m] += v
			tm.all[m] += v
		}
		n[row.Task]++
	}
	for task, s := range tm.byTask {
		for m := range s {
			s[m] /= n[task]
		}
	}
	for m := range tm.all {
		tm.all[m] /= float64(max(len(t.Rows), 1))
	}
	return tm
}

func (tm *taskMean) predict(_ spVec, task string, q []float64) {
	s, ok := tm.byTask[task]
	if !ok {
		s = tm.all
	}
	copy(q, s)
}

// linear is one weight vector per model over the features; logistic
// models pass the margin through the sigmoid.
type linear struct {
	w        [][]float64
	logistic bool
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func (l *linear) predict(x spVec, _ string, q []float64) {
	for m, w := range l.w {
		z := x.dot(w)
		if l.logistic {
			z = sigmoid(z)
		}
		q[m] = z
	}
}

// maxIterations bounds L-BFGS's iterations per model: the validation
// error no longer moves well before (measured on RouterBench).
const maxIterations = 150

// fitLinear fits one model per LLM minimising the mean loss (log loss with
// the score as a soft label, or squared error) plus l2/2·|w|², by L-BFGS.
func fitLinear(t *Table, X []spVec, dim int, logistic bool, l2 float64) (*linear, error) {
	n := float64(len(X))
	l := &linear{logistic: logistic, w: make([][]float64, len(t.Models))}
	for m := range t.Models {
		y := make([]float64, len(X))
		for r := range t.Rows {
			y[r] = t.Rows[r].Scores[m]
		}
		// Func and Grad are called at the same points: the margins of the
		// last point are kept for both.
		z := make([]float64, len(X))
		var at []float64
		margins := func(w []float64) {
			if at != nil && slices.Equal(at, w) {
				return
			}
			at = append(at[:0], w...)
			for r, x := range X {
				z[r] = x.dot(w)
			}
		}
		p := optimize.Problem{
			Func: func(w []float64) float64 {
				margins(w)
				f := 0.0
				for r, zr := range z {
					if logistic {
						// log(1+e^z) − y·z, stable for large |z|.
						f += math.Max(zr, 0) + math.Log1p(math.Exp(-math.Abs(zr))) - y[r]*zr
					} else {
						d := zr - y[r]
						f += d * d / 2
					}
				}
				ss := 0.0
				for _, v := range w {
					ss += v * v
				}
				return f/n + l2/2*ss
			},
			Grad: func(g, w []float64) {
				margins(w)
				for i := range g {
					g[i] = l2 * w[i]
				}
				for r, x := range X {
					zr := z[r]
					if logistic {
						zr = sigmoid(zr)
					}
					d := (zr - y[r]) / n
					for j, i := range x.idx {
						g[i] += d * x.val[j]
					}
				}
			},
		}
		res, err := optimize.Minimize(p, make([]float64, dim), &optimize.Settings{
			GradientThreshold: 1e-6, MajorIterations: maxIterations, Converger: &optimize.FunctionConverge{Absolute: 1e-9, Iterations: 20},
		}, &optimize.LBFGS{})
		if err != nil && res == nil {
			return nil, fmt.Errorf("fit %s model of %s: %w", map[bool]string{true: "logistic", false: "ridge"}[logistic], t.Models[m], err)
		}
		l.w[m] = res.X
	}
	return l, nil
}

// knn predicts every model's mean score over the k training prompts most
// cosine-similar to the row.
type knn struct {
	t    *Table
	x    []spVec
	norm []float64
	k    int
	dim  int
}

func newKNN(t *Table, X []spVec, k int) *knn {
	kn := &knn{t: t, x: X, k: max(1, min(k, len(X))), norm: make([]float64, len(X))}
	for r, x := range X {
		s := 0.0
		for _, v := range x.val {
			s += v * v
		}
		kn.norm[r] = math.Sqrt(s)
		for _, i := range x.idx {
			kn.dim = max(kn.dim, int(i)+1)
		}
	}
	return kn
}

func (kn *knn) predict(x spVec, _ string, q []float64) {
	dense := make([]float64, kn.dim)
	nx := 0.0
	for j, i := range x.idx {
		if int(i) < kn.dim {
			dense[i] = x.val[j]
		}
		nx += x.val[j] * x.val[j]
	}
	nx = math.Sqrt(nx)
	type nb struct {
		r   int
		sim float64
	}
	sims := make([]nb, len(kn.x))
	for r, xr := range kn.x {
		s := xr.dot(dense)
		if d := kn.norm[r] * nx; d > 0 {
			s /= d
		}
		sims[r] = nb{r, s}
	}
	slices.SortFunc(sims, func(a, b nb) int {
		if c := cmp.Compare(b.sim, a.sim); c != 0 {
			return c
		}
		return cmp.Compare(a.r, b.r)
	})
	for m := range q {
		q[m] = 0
	}
	for _, s := range sims[:kn.k] {
		for m, v := range kn.t.Rows[s.r].Scores {
			q[m] += v
		}
	}
	for m := range q {
		q[m] /= float64(kn.k)
	}
}

// costModel predicts a model's cost on a prompt: per model and task, a
// least-squares line in the prompt's length (costs grow with input
// tokens), its mean when the lengths do not vary, clamped at 0.
type costModel struct {
	a, b map[string][]float64 // per task, per model: cost ≈ a + b·len
	all  []float64
}

func fitCost(t *Table) *costModel {
	k := len(t.Models)
	cm := &costModel{a: map[string][]float64{}, b: map[string][]float64{}, all: make([]float64, k)}
	for _, task := range t.Tasks() {
		var n, sx, sxx float64
		sy, sxy := make([]float64, k), make([]float64, k)
		for r := range t.Rows {
			row := &t.Rows[r]
			if row.Task != task {
				continue
			}
			x := float64(len(row.Prompt))
			n++
			sx += x
			sxx += x * x
			for m, c := range row.Costs {
				sy[m] += c
				sxy[m] += x * c
			}
		}
		a, b := make([]float64, k), make([]float64, k)
		vx := sxx/n - (sx/n)*(sx/n)
		for m := range k {
			if vx > 1e-9 {
				b[m] = (sxy[m]/n - (sx/n)*(sy[m]/n)) / vx
			}
			a[m] = sy[m]/n - b[m]*sx/n
		}
		cm.a[task], cm.b[task] = a, b
	}
	for r := range t.Rows {
		for m, c := range t.Rows[r].Costs {
			cm.all[m] += c / float64(len(t.Rows))
		}
	}
	return cm
}

func (cm *costModel) predict(row *Row, c []float64) {
	a, ok := cm.a[row.Task]
	if !ok {
		copy(c, cm.all)
		return
	}
	b := cm.b[row.Task]
	x := float64(len(row.Prompt))
	for m := range c {
		c[m] = max(0, a[m]+b[m]*x)
	}
}

// RouterLearners are the learners FitRouter can export: their predictions
// are linear in the features (through the logistic function for
// logistic), so policy.LinearRouter serves them.
var RouterLearners = []string{"ridge", "logistic"}

// FitRouter fits learner (ridge or logistic) on train as HeldOut does —
// text IDF fitted on train, the hyper-parameter chosen on a validation
// part of it (seed), then refitted on all of train — plus a per-model
// ridge regression of the cost on the same features, and returns the
// servable router with its encoder spec. ro sets the router's Lambda,
// Budget and Eta (its Dim and Arms are filled in).
func FitRouter(train *Table, ts policy.TextSpec, learner string, ro policy.LinearRouterOpts, seed uint64) (*policy.LinearRouter, policy.EncoderSpec, error) {
	if !slices.Contains(RouterLearners, learner) {
		return nil, policy.EncoderSpec{}, fmt.Errorf("learner %q: cannot be served as a linear router (want one of %v)", learner, RouterLearners)
	}
	spec, err := train.TextEncoderSpec(ts)
	if err != nil {
		return nil, spec, err
	}
	enc, err := policy.NewEncoder(spec)
	if err != nil {
		return nil, spec, err
	}
	fit, val, err := train.Split(0.8, seed^0x76616c)
	if err != nil {
		return nil, spec, fmt.Errorf("validation split: %w", err)
	}
	grid, err := learnerGrid(learner)
	if err != nil {
		return nil, spec, err
	}
	h, err := chooseHyper(learner, grid, fit, val, enc)
	if err != nil {
		return nil, spec, err
	}
	X := encodeRows(train, enc)
	dim := enc.Dim()
	q, err := fitLinear(train, X, dim, learner == "logistic", h.value)
	if err != nil {
		return nil, spec, err
	}
	// Costs are about 1e-4..1e-2 dollars: fit them in thousandths so the
	// L2 penalty does not swamp them, then scale the weights back.
	const scale = 1000
	ct := &Table{Name: train.Name, Models: train.Models, Rows: make([]Row, len(train.Rows))}
	for r, row := range train.Rows {
		s := make([]float64, len(row.Costs))
		for m, c := range row.Costs {
			s[m] = c * scale
		}
		ct.Rows[r] = Row{Task: row.Task, Scores: s}
	}
	c, err := fitLinear(ct, X, dim, false, 1e-4)
	if err != nil {
		return nil, spec, err
	}
	arms := make([]policy.RouterArm, len(train.Models))
	for m, id := range train.Models {
		cw := make([]float64, dim)
		for i, w := range c.w[m] {
			cw[i] = w / scale
		}
		arms[m] = policy.RouterArm{ID: id, Quality: q.w[m], Logistic: q.logistic, Cost: cw}
	}
	ro.Dim, ro.Arms = dim, arms
	p, err := policy.NewLinearRouter(ro)
	return p, enc.Spec(), err
}

// chooseHyper fits learner with every value of grid on fit and returns
// the one with the lowest mean squared error of predicted quality on val,
// and that error.
func chooseHyper(learner string, grid []hyper, fit, val *Table, enc *policy.FeatureEncoder) (hyper, error) {
	h, _, _, err := chooseHyperMSE(learner, grid, fit, val, encodeRows(fit, enc), encodeRows(val, enc), enc.Dim())
	return h, err
}

// chooseHyperMSE is chooseHyper on encoded rows; it also returns the
// chosen learner as fitted on fit.
func chooseHyperMSE(learner string, grid []hyper, fit, val *Table, Xfit, Xval []spVec, dim int) (hyper, float64, predictor, error) {
	k := len(fit.Models)
	q := make([]float64, k)
	bestH, bestMSE := grid[0], math.Inf(1)
	var best predictor
	for _, h := range grid {
		p, err := fitLearner(learner, h, fit, Xfit, dim)
		if err != nil {
			return h, 0, nil, err
		}
		mse := 0.0
		for r, x := range Xval {
			p.predict(x, val.Rows[r].Task, q)
			for m := range k {
				d := q[m] - val.Rows[r].Scores[m]
				mse += d * d
			}
		}
		mse /= float64(max(len(Xval)*k, 1))
		if mse < bestMSE {
			bestH, bestMSE, best = h, mse, p
		}
	}
	if best == nil { // no finite error: grid[0], as chosen
		p, err := fitLearner(learner, bestH, fit, Xfit, dim)
		return bestH, bestMSE, p, err
	}
	return bestH, bestMSE, best, nil
}
