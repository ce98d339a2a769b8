package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// mfOpts are the hyper-parameters of the matrix-factorisation learner.
type mfOpts struct {
	// Dim is the embedding dimension shared by prompts and models.
	Dim int
	// L2 is the weight decay on the projection and the model embeddings
	// (the loss is the mean log loss plus L2/2·(|P|² + |V|²)).
	L2 float64
	// Epochs is the number of passes over the training rows.
	Epochs int
	// LR is Adam's step size (0 means 0.01).
	LR float64
	// Batch is the minibatch size in rows (0 means 32).
	Batch int
	// Seed drives the initialisation and the row order.
	Seed uint64
}

func (o mfOpts) String() string {
	return fmt.Sprintf("dim=%d,l2=%g,epochs=%d", o.Dim, o.L2, o.Epochs)
}

// mf is a RouteLLM-style matrix factorisation of the score table: the
// prompt's embedding is a learned linear projection u = P·x of its feature
// vector (text, task, size), every model m has a learned embedding v_m and
// bias b_m, and the predicted score is σ(v_m·u + b_m). RouteLLM's form
// w·(v_m ⊙ P x) is the same family (w is absorbed into v_m). Since u is
// linear in x, the model's quality predictor is linear in x through the
// logistic function: (Pᵀv_m)·x + b_m, servable by policy.LinearRouter.
type mf struct {
	// base is the task-mean offset: logit(clamp(base.predict)) is added to
	// every margin, so the factors learn what the prompt adds to routing
	// by task, and a heavily regularised fit falls back to task-mean.
	base *taskMean
	dim  int
	p    []float64 // features × dim, row-major: the embedding of feature i is p[i*dim:(i+1)*dim]
	v    []float64 // models × dim
	b    []float64 // models
}

// fitMF fits an mf to the scores of t (soft labels in [0,1]) on the
// encoded rows X of dimension dim, minimising the mean log loss over rows
// and models plus the L2 penalty by minibatch Adam, seeded by o.Seed.
func fitMF(t *Table, X []spVec, dim int, o mfOpts) (*mf, error) {
	if o.Dim < 1 || o.Dim > 1024 {
		return nil, fmt.Errorf("mf: dim %d outside [1, 1024]", o.Dim)
	}
	if !(o.L2 >= 0) || math.IsInf(o.L2, 1) {
		return nil, fmt.Errorf("mf: l2 %v must be a finite number >= 0", o.L2)
	}
	if o.Epochs < 1 || o.Epochs > 100000 {
		return nil, fmt.Errorf("mf: epochs %d outside [1, 100000]", o.Epochs)
	}
	if len(X) != len(t.Rows) || len(X) == 0 {
		return nil, fmt.Errorf("mf: %d feature rows for %d table rows", len(X), len(t.Rows))
	}
	if o.LR == 0 {
		o.LR = 0.01
	}
	if o.Batch == 0 {
		o.Batch = 32
	}
	if !(o.LR > 0) || o.LR > 1 || o.Batch < 1 {
		return nil, fmt.Errorf("mf: learning rate %v must be in (0,1] and batch %d >= 1", o.LR, o.Batch)
	}
	k, d := len(t.Models), o.Dim
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x6d66))
	m := &mf{base: fitTaskMean(t), dim: d, p: make([]float64, dim*d), v: make([]float64, k*d), b: make([]float64, k)}
	// Small random embeddings, biases 0: the factors start near the
	// task-mean offset and learn the deviations.
	for i := range m.p {
		m.p[i] = rng.NormFloat64() * 0.1
	}
	for i := range m.v {
		m.v[i] = rng.NormFloat64() * 0.1
	}
	off := make([]float64, len(t.Rows)*k)
	for r := range t.Rows {
		m.offset(t.Rows[r].Task, off[r*k:(r+1)*k])
	}

	params := [][]float64{m.p, m.v, m.b}
	grads := [][]float64{make([]float64, len(m.p)), make([]float64, len(m.v)), make([]float64, k)}
	mom := [][]float64{make([]float64, len(m.p)), make([]float64, len(m.v)), make([]float64, k)}
	vel := [][]float64{make([]float64, len(m.p)), make([]float64, len(m.v)), make([]float64, k)}
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	order := make([]int, len(X))
	for i := range order {
		order[i] = i
	}
	u, gu := make([]float64, d), make([]float64, d)
	step := 0
	for range o.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < len(order); lo += o.Batch {
			batch := order[lo:min(lo+o.Batch, len(order))]
			for _, g := range grads {
				clear(g)
			}
			scale := 1 / float64(len(batch)*k)
			for _, r := range batch {
				x := X[r]
				m.embed(x, u)
				clear(gu)
				for j := range k {
					vj := m.v[j*d : (j+1)*d]
					z := m.b[j] + off[r*k+j]
					for c, uc := range u {
						z += vj[c] * uc
					}
					e := (sigmoid(z) - t.Rows[r].Scores[j]) * scale
					grads[2][j] += e
					gv := grads[1][j*d : (j+1)*d]
					for c := range d {
						gv[c] += e * u[c]
						gu[c] += e * vj[c]
					}
				}
				for n, i := range x.idx {
					gp := grads[0][int(i)*d : (int(i)+1)*d]
					xv := x.val[n]
					for c := range d {
						gp[c] += xv * gu[c]
					}
				}
			}
			step++
			c1 := 1 - math.Pow(beta1, float64(step))
			c2 := 1 - math.Pow(beta2, float64(step))
			for g := range params {
				w, gr, m1, m2 := params[g], grads[g], mom[g], vel[g]
				decay := o.L2
				if g == 2 {
					decay = 0 // biases are not penalised
				}
				for i := range w {
					gi := gr[i] + decay*w[i]
					m1[i] = beta1*m1[i] + (1-beta1)*gi
					m2[i] = beta2*m2[i] + (1-beta2)*gi*gi
					w[i] -= o.LR * (m1[i] / c1) / (math.Sqrt(m2[i]/c2) + eps)
				}
			}
		}
	}
	for _, w := range params {
		for i, x := range w {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("mf: training diverged (parameter %d is %v); lower the learning rate", i, x)
			}
		}
	}
	return m, nil
}

// embed sets u to the prompt embedding P·x.
func (m *mf) embed(x spVec, u []float64) {
	clear(u)
	d := m.dim
	for n, i := range x.idx {
		if int(i)*d >= len(m.p) {
			continue // a feature the model never saw
		}
		pi := m.p[int(i)*d : (int(i)+1)*d]
		xv := x.val[n]
		for c := range d {
			u[c] += xv * pi[c]
		}
	}
}

// offset sets o to the logits of the task-mean offsets of task.
func (m *mf) offset(task string, o []float64) {
	m.base.predict(spVec{}, task, o)
	for j, p := range o {
		p = min(max(p, 0.005), 0.995)
		o[j] = math.Log(p / (1 - p))
	}
}

func (m *mf) predict(x spVec, task string, q []float64) {
	u := make([]float64, m.dim)
	m.embed(x, u)
	m.offset(task, q)
	for j := range q {
		z := m.b[j] + q[j]
		for c, uc := range u {
			z += m.v[j*m.dim+c] * uc
		}
		q[j] = sigmoid(z)
	}
}
