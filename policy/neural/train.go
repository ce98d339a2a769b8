package neural

import (
	"context"
	"fmt"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	// gorgonia's dependency go4.org/unsafe/assume-no-moving-gc panics at
	// start-up on Go 1.26 unless it is at least this pinned version (see
	// go.mod); importing it here keeps the pin a direct, visible requirement.
	_ "go4.org/unsafe/assume-no-moving-gc"
)

// dataset is a set of regression rows (x, arm, target, weight): the replay
// buffer's contents, or rows built from logs. xs is row-major n×dim.
type dataset struct {
	dim int
	xs  []float64
	arm []int32
	y   []float64
	w   []float64
}

func (d *dataset) len() int { return len(d.y) }

func (d *dataset) add(x []float64, arm int, y, w float64) {
	d.xs = append(d.xs, x...)
	d.arm = append(d.arm, int32(arm))
	d.y = append(d.y, y)
	d.w = append(d.w, w)
}

func (d *dataset) row(i int) []float64 { return d.xs[i*d.dim : (i+1)*d.dim] }

// trainOpts are one training round's settings.
type trainOpts struct {
	Steps int     // Adam steps
	Batch int     // rows per step, drawn with replacement
	LR    float64 // Adam learning rate
	L2    float64 // weight decay (Adam's L2 regularisation); 0 = none
}

// TrainStats describe one training round.
type TrainStats struct {
	// Rows is the number of training rows, Steps the Adam steps taken.
	Rows, Steps int
	// LossBefore and LossAfter are the weighted mean squared error of the
	// network's heads over all rows before and after the round.
	LossBefore, LossAfter float64
}

// graph is the reward network as a gorgonia expression graph over a
// fixed batch size: X (batch×in) → ReLU layers → Z → heads → Out
// (batch×arms), and the weighted squared error against Y under the mask M,
// whose row i holds row i's weight (normalised over the batch) in the
// column of its arm and 0 elsewhere, so only the played arm's head is fitted.
type graph struct {
	g          *gorgonia.ExprGraph
	x, m, y    *gorgonia.Node
	z, out     *gorgonia.Node
	loss       *gorgonia.Node
	learnables gorgonia.Nodes
	// backing slices of the input tensors, refilled per step
	xb, mb, yb []float64
	xt, mt, yt *tensor.Dense
}

// buildGraph builds the graph of m for batches of batch rows, initialised
// with m's weights (copied: the graph's values are the trainer's own).
func buildGraph(m *mlp, batch int) (*graph, error) {
	g := gorgonia.NewGraph()
	gr := &graph{g: g}
	k := m.arms
	gr.xb = make([]float64, batch*m.in)
	gr.mb = make([]float64, batch*k)
	gr.yb = make([]float64, batch*k)
	gr.xt = tensor.New(tensor.WithShape(batch, m.in), tensor.WithBacking(gr.xb))
	gr.mt = tensor.New(tensor.WithShape(batch, k), tensor.WithBacking(gr.mb))
	gr.yt = tensor.New(tensor.WithShape(batch, k), tensor.WithBacking(gr.yb))
	gr.x = gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(batch, m.in), gorgonia.WithName("x"), gorgonia.WithValue(gr.xt))
	gr.m = gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(batch, k), gorgonia.WithName("mask"), gorgonia.WithValue(gr.mt))
	gr.y = gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(batch, k), gorgonia.WithName("y"), gorgonia.WithValue(gr.yt))
	ones := make([]float64, batch)
	for i := range ones {
		ones[i] = 1
	}
	// Biases enter as ones·b (batch×1 times 1×out): a plain matrix
	// product, which broadcasts without gorgonia's broadcast patterns.
	one := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(batch, 1), gorgonia.WithName("ones"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(batch, 1), tensor.WithBacking(ones))))
	param := func(name string, rows, cols int, v []float64) *gorgonia.Node {
		n := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(rows, cols), gorgonia.WithName(name),
			gorgonia.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(append([]float64(nil), v...)))))
		gr.learnables = append(gr.learnables, n)
		return n
	}
	dense := func(in *gorgonia.Node, w, b *gorgonia.Node) (*gorgonia.Node, error) {
		xw, err := gorgonia.Mul(in, w)
		if err != nil {
			return nil, err
		}
		ob, err := gorgonia.Mul(one, b)
		if err != nil {
			return nil, err
		}
		return gorgonia.Add(xw, ob)
	}
	h := gr.x
	for i, l := range m.layers {
		w := param(fmt.Sprintf("w%d", i), l.in, l.out, l.w)
		b := param(fmt.Sprintf("b%d", i), 1, l.out, l.b)
		a, err := dense(h, w, b)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if h, err = gorgonia.Rectify(a); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	gr.z = h
	hw := param("head_w", m.rep(), k, m.headW)
	hb := param("head_b", 1, k, m.headB)
	out, err := dense(h, hw, hb)
	if err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	gr.out = out
	diff, err := gorgonia.Sub(out, gr.y)
	if err != nil {
		return nil, err
	}
	sq, err := gorgonia.Square(diff)
	if err != nil {
		return nil, err
	}
	wsq, err := gorgonia.HadamardProd(gr.m, sq)
	if err != nil {
		return nil, err
	}
	if gr.loss, err = gorgonia.Sum(wsq); err != nil {
		return nil, err
	}
	return gr, nil
}

// export copies the graph's current weights into a new mlp shaped like m.
func (gr *graph) export(m *mlp) (*mlp, error) {
	c := m.clone()
	vals := make([][]float64, len(gr.learnables))
	for i, n := range gr.learnables {
		d, ok := n.Value().Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("weights %s: not float64", n.Name())
		}
		vals[i] = d
	}
	for i := range c.layers {
		copy(c.layers[i].w, vals[2*i])
		copy(c.layers[i].b, vals[2*i+1])
	}
	copy(c.headW, vals[2*len(c.layers)])
	copy(c.headB, vals[2*len(c.layers)+1])
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("training diverged: %w", err)
	}
	return c, nil
}

// fill loads rows idx of d into the graph's input tensors; weights are
// normalised over the batch so the loss is a weighted mean.
func (gr *graph) fill(d *dataset, idx []int, k int) {
	clear(gr.mb)
	clear(gr.yb)
	var sw float64
	for _, i := range idx {
		sw += d.w[i]
	}
	if sw <= 0 {
		sw = 1
	}
	for r, i := range idx {
		copy(gr.xb[r*d.dim:(r+1)*d.dim], d.row(i))
		a := int(d.arm[i])
		gr.mb[r*k+a] = d.w[i] / sw
		gr.yb[r*k+a] = d.y[i]
	}
}

// train runs one round of Adam on the weighted squared error of m's heads
// over d and returns the new network; m is not modified. Each call builds
// its own graph and tape machine (gorgonia VMs are not safe for concurrent
// use) and closes it. Minibatches are drawn with replacement from rng.
func train(ctx context.Context, m *mlp, d *dataset, o trainOpts, rng *rand.Rand) (*mlp, TrainStats, error) {
	n := d.len()
	st := TrainStats{Rows: n}
	if n == 0 {
		return m, st, nil
	}
	for i, a := range d.arm {
		if int(a) >= m.arms || a < 0 {
			return nil, st, fmt.Errorf("row %d: arm %d beyond the network's %d heads", i, a, m.arms)
		}
	}
	st.LossBefore = loss(m, d)
	batch := min(o.Batch, n)
	gr, err := buildGraph(m, batch)
	if err != nil {
		return nil, st, fmt.Errorf("build training graph: %w", err)
	}
	if _, err := gorgonia.Grad(gr.loss, gr.learnables...); err != nil {
		return nil, st, fmt.Errorf("differentiate training graph: %w", err)
	}
	vm := gorgonia.NewTapeMachine(gr.g, gorgonia.BindDualValues(gr.learnables...))
	defer vm.Close()
	sopts := []gorgonia.SolverOpt{gorgonia.WithLearnRate(o.LR), gorgonia.WithClip(5)}
	if o.L2 > 0 {
		sopts = append(sopts, gorgonia.WithL2Reg(o.L2))
	}
	solver := gorgonia.NewAdamSolver(sopts...)
	idx := make([]int, batch)
	for s := 0; s < o.Steps; s++ {
		if s%32 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, st, err
			}
		}
		for r := range idx {
			idx[r] = rng.IntN(n)
		}
		gr.fill(d, idx, m.arms)
		if err := vm.RunAll(); err != nil {
			return nil, st, fmt.Errorf("training step %d: %w", s, err)
		}
		if err := solver.Step(gorgonia.NodesToValueGrads(gr.learnables)); err != nil {
			return nil, st, fmt.Errorf("training step %d: solver: %w", s, err)
		}
		vm.Reset()
		st.Steps++
	}
	out, err := gr.export(m)
	if err != nil {
		return nil, st, err
	}
	st.LossAfter = loss(out, d)
	return out, st, nil
}

// loss is the weighted mean squared error of m's heads over d, computed on
// the serving path.
func loss(m *mlp, d *dataset) float64 {
	w := m.maxWidth()
	z, s1, s2 := make([]float64, m.rep()), make([]float64, w), make([]float64, w)
	var num, den float64
	for i := 0; i < d.len(); i++ {
		m.forward(d.row(i), z, s1, s2)
		e := m.head(z, int(d.arm[i])) - d.y[i]
		num += d.w[i] * e * e
		den += d.w[i]
	}
	if den == 0 {
		return 0 // no weighted rows: nothing to get wrong
	}
	return num / den
}
