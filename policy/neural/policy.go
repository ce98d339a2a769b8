package neural

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// Name is the registry name of NeuralLinear.
const Name = "neural-linear"

// Explore is how NeuralLinear explores on top of its posterior.
type Explore int

const (
	// Thompson draws θ̃ₐ·φ ~ N(θₐ·φ, Scale²·φᵀAₐ⁻¹φ) per candidate and plays
	// the best draw (Riquelme et al. 2018). Propensities are 1 for the
	// winner of the draw, 0 elsewhere: exact given the draw, as for
	// policy.Thompson; wrap it in a floor for off-policy logs.
	Thompson Explore = iota
	// UCB plays the arm maximising θₐ·φ + Scale·sqrt(φᵀAₐ⁻¹φ), as LinUCB
	// on the learnt representation. Deterministic: propensities 1/0.
	UCB
)

func (e Explore) String() string {
	if e == UCB {
		return "ucb"
	}
	return "thompson"
}

// ParseExplore is the inverse of Explore.String.
func ParseExplore(s string) (Explore, error) {
	switch s {
	case "thompson":
		return Thompson, nil
	case "ucb":
		return UCB, nil
	}
	return 0, fmt.Errorf("explore %q: want thompson or ucb", s)
}

// Opts configure NewNeuralLinear. The zero value means every default.
type Opts struct {
	// Dim is the feature vector length; 0 adopts the first vector's.
	Dim int
	// Hidden are the widths of the ReLU layers; the last is the
	// representation the Bayesian regressions read. nil means {64, 32}.
	Hidden []int
	// Explore is Thompson (default) or UCB.
	Explore Explore
	// Scale is the posterior scale: Thompson's v, UCB's alpha. 0 means
	// 0.25 (v) or 0.5 (alpha).
	Scale float64
	// LearnNoise makes Thompson learn each arm's noise variance σ² with a
	// normal-inverse-gamma posterior, as in the paper, instead of the fixed
	// Scale²: every Select draws σ² ~ IG(aₙ, bₙ) per candidate, then
	// θ̃·φ ~ N(θ·φ, σ²·φᵀA⁻¹φ). The prior IG(2, Scale²) has mean Scale², so
	// Scale stays the starting guess of the noise's standard deviation.
	LearnNoise bool
	// Draws is Thompson's number of posterior draws per Select; 0 means 1.
	// With M > 1 every candidate's propensity is its share of the M draws'
	// wins and the policy plays the winner of one of them chosen uniformly,
	// so the logged propensities are exact and smoother than 1/0.
	Draws int
	// Lambda is the ridge precision of the per-arm regressions (prior
	// precision relative to the noise); 0 means 1.
	Lambda float64
	// Retrain is the number of rewards before the first training round;
	// the interval then doubles after every round up to RetrainMax.
	// Defaults 500 and 8000 (or Retrain, when larger).
	Retrain, RetrainMax int
	// Steps, Batch, LR and L2 are each round's Adam steps (default 200),
	// rows per step (64, drawn with replacement from the buffer),
	// learning rate (0.003) and L2 weight decay (0 = none).
	Steps, Batch int
	LR, L2       float64
	// Buffer is the replay buffer: the last Buffer rewards are kept for
	// training and for rebuilding the regressions. 0 means 20000.
	Buffer int
	// Async runs training rounds in a background goroutine instead of in
	// the Update that reaches the schedule, so no caller waits for one (a
	// 200-step round takes a few hundred milliseconds). Rounds then install
	// whenever they finish, so runs are no longer reproducible to the bit;
	// Wait blocks until the running round is done.
	Async bool
	// Seed drives the initial weights, the minibatches and Thompson's
	// draws (separate streams derived from it).
	Seed uint64
}

const (
	maxDim   = 4096
	maxArms  = 256
	maxWidth = 1024
	// maxInput bounds feature values: encoders produce values in [-1, 1],
	// and far larger inputs would overflow the network's activations.
	maxInput = 1e6
)

func (o *Opts) fill() error {
	if o.Dim < 0 || o.Dim > maxDim {
		return fmt.Errorf("dim %d outside [0,%d]", o.Dim, maxDim)
	}
	if o.Hidden == nil {
		o.Hidden = []int{64, 32}
	}
	if len(o.Hidden) == 0 || len(o.Hidden) > 8 {
		return fmt.Errorf("hidden: %d layers, want 1 to 8", len(o.Hidden))
	}
	for i, h := range o.Hidden {
		if h < 1 || h > maxWidth {
			return fmt.Errorf("hidden[%d] = %d outside [1,%d]", i, h, maxWidth)
		}
	}
	if o.Explore != Thompson && o.Explore != UCB {
		return fmt.Errorf("explore %d unknown", o.Explore)
	}
	if o.Draws == 0 {
		o.Draws = 1
	}
	if o.Draws < 1 || o.Draws > 4096 || (o.Explore == UCB && o.Draws != 1) {
		return fmt.Errorf("draws %d: want 1 to 4096, and 1 for explore ucb", o.Draws)
	}
	if o.LearnNoise && o.Explore == UCB {
		return fmt.Errorf("noise learning is for explore thompson")
	}
	if o.Scale == 0 {
		o.Scale = 0.25
		if o.Explore == UCB {
			o.Scale = 0.5
		}
	}
	if !(o.Scale > 0) || math.IsInf(o.Scale, 0) {
		return fmt.Errorf("scale %v must be a finite number > 0", o.Scale)
	}
	if o.Lambda == 0 {
		o.Lambda = 1
	}
	if !(o.Lambda > 0) || math.IsInf(o.Lambda, 0) {
		return fmt.Errorf("lambda %v must be a finite number > 0", o.Lambda)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Retrain, 500)
	def(&o.RetrainMax, max(8000, o.Retrain))
	def(&o.Steps, 200)
	def(&o.Batch, 64)
	def(&o.Buffer, 20000)
	if o.LR == 0 {
		o.LR = 0.003
	}
	switch {
	case o.Retrain < 1 || o.RetrainMax < o.Retrain:
		return fmt.Errorf("retrain %d, retrain_max %d: want 1 <= retrain <= retrain_max", o.Retrain, o.RetrainMax)
	case o.Steps < 1 || o.Steps > 1_000_000:
		return fmt.Errorf("steps %d outside [1,1e6]", o.Steps)
	case o.Batch < 1 || o.Batch > 65536:
		return fmt.Errorf("batch %d outside [1,65536]", o.Batch)
	case !(o.LR > 0 && o.LR < 10):
		return fmt.Errorf("lr %v outside (0,10)", o.LR)
	case !(o.L2 >= 0 && o.L2 < 10):
		return fmt.Errorf("l2 %v outside [0,10)", o.L2)
	case o.Buffer < 1 || o.Buffer > 10_000_000:
		return fmt.Errorf("buffer %d outside [1,1e7]", o.Buffer)
	}
	return nil
}

func noiseString(learn bool) string {
	if learn {
		return "learn"
	}
	return "fixed"
}

// hiddenString renders widths as "64x32" (commas separate specs).
func hiddenString(h []int) string {
	s := make([]string, len(h))
	for i, v := range h {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, "x")
}

func parseHidden(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, "x") {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("hidden %q: want widths like 64x32: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func ff(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// params are the registry parameters (without seed) a snapshot records.
func (o Opts) params() policy.Params {
	return policy.Params{
		"dim": strconv.Itoa(o.Dim), "hidden": hiddenString(o.Hidden), "explore": o.Explore.String(),
		"scale": ff(o.Scale), "draws": strconv.Itoa(o.Draws), "noise": noiseString(o.LearnNoise), "lambda": ff(o.Lambda), "retrain": strconv.Itoa(o.Retrain),
		"retrain_max": strconv.Itoa(o.RetrainMax), "steps": strconv.Itoa(o.Steps), "batch": strconv.Itoa(o.Batch),
		"lr": ff(o.LR), "l2": ff(o.L2), "buffer": strconv.Itoa(o.Buffer), "async": strconv.FormatBool(o.Async),
	}
}

// NeuralLinear is the NeuralLinear contextual bandit (Riquelme, Tucker &
// Snoek 2018): a ReLU network, trained with gorgonia to regress the reward
// of the played arm on Features.Vector, supplies a representation z(x), and
// each arm keeps an exact Bayesian linear regression of its reward on
// φ = [z(x); 1] for exploration (Thompson sampling or UCB). See the package
// documentation for the architecture, the training schedule and why Select
// never touches gorgonia.
//
// Safe for concurrent use. Training runs in the Update that reaches the
// schedule, outside the policy's lock, so concurrent Selects and Updates
// go on meanwhile with the previous network.
type NeuralLinear struct {
	o Opts

	mu   sync.Mutex
	dim  int
	net  *mlp // immutable once installed; nil until the dimension is known
	ids  []string
	idx  map[string]int
	blr  []*blrArm
	buf  ring
	rng  *rand.Rand // Thompson's draws
	src  *rand.PCG
	trng *rand.Rand // initial weights and per-round training seeds
	tsrc *rand.PCG

	sinceTrain int           // rewards since the last round started
	interval   int           // rewards between rounds (doubling up to RetrainMax)
	rounds     int           // training rounds completed
	training   bool          // a round is running outside the lock
	done       chan struct{} // closed when the running round ends
	trainErrs  int
	lastErr    error
	gen        int64 // bumped by Restore and offline fits: stale rounds are dropped
	last       TrainStats

	// scratch for Select and Update, guarded by mu
	z, s1, s2, phi, u []float64
	means, sds        []float64 // per candidate, for Draws > 1
	nz                []int
}

var (
	_ policy.Policy       = (*NeuralLinear)(nil)
	_ policy.Snapshotter  = (*NeuralLinear)(nil)
	_ policy.Versioner    = (*NeuralLinear)(nil)
	_ policy.SpecReporter = (*NeuralLinear)(nil)
)

// NewNeuralLinear validates o and returns an untrained policy.
func NewNeuralLinear(o Opts) (*NeuralLinear, error) {
	if err := o.fill(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	o.Hidden = append([]int(nil), o.Hidden...)
	p := &NeuralLinear{o: o, idx: map[string]int{}, interval: o.Retrain}
	p.src = rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)
	p.rng = rand.New(p.src)
	p.tsrc = rand.NewPCG(o.Seed^0x2545f4914f6cdd1d, o.Seed+0x632be59bd9b4e019)
	p.trng = rand.New(p.tsrc)
	if o.Dim > 0 {
		p.setDim(o.Dim)
	}
	return p, nil
}

// setDim fixes the input dimension and draws the initial network.
func (p *NeuralLinear) setDim(d int) {
	p.dim = d
	p.net = newMLP(d, p.o.Hidden, p.trng)
	p.buf = newRing(p.o.Buffer, d)
	p.scratch()
}

func (p *NeuralLinear) scratch() {
	w, r := p.net.maxWidth(), p.net.rep()
	p.z, p.s1, p.s2 = make([]float64, r), make([]float64, w), make([]float64, w)
	p.phi, p.u, p.nz = make([]float64, r+1), make([]float64, r+1), make([]int, 0, r+1)
}

// Options returns the options p was built with, defaults filled in.
func (p *NeuralLinear) Options() Opts {
	o := p.o
	o.Hidden = append([]int(nil), o.Hidden...)
	return o
}

// Name implements policy.Policy.
func (*NeuralLinear) Name() string { return Name }

// Version implements policy.Versioner: the training rounds completed,
// so logs tell the successive networks apart.
func (p *NeuralLinear) Version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "1.r" + strconv.Itoa(p.rounds)
}

// vector validates f's vector, adopting its length when still open.
// Callers hold mu.
func (p *NeuralLinear) vector(f *decision.Features) ([]float64, error) {
	if f == nil || len(f.Vector) == 0 {
		return nil, fmt.Errorf("%w: policy %s needs Features.Vector (configure an Encoder); got none", policy.ErrBadVector, Name)
	}
	x := f.Vector
	if p.dim != 0 && len(x) != p.dim {
		return nil, fmt.Errorf("%w: policy %s expects %d dims, got %d", policy.ErrBadVector, Name, p.dim, len(x))
	}
	if len(x) > maxDim {
		return nil, fmt.Errorf("%w: policy %s: %d dims exceed %d", policy.ErrBadVector, Name, len(x), maxDim)
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxInput {
			return nil, fmt.Errorf("%w: policy %s: Vector[%d] = %v (finite, |v| <= %g)", policy.ErrBadVector, Name, i, v, maxInput)
		}
	}
	if p.dim == 0 {
		p.setDim(len(x))
	}
	return x, nil
}

// represent computes φ = [z(x); 1] into p.phi and its non-zeros into p.nz.
// Callers hold mu.
func (p *NeuralLinear) represent(x []float64) {
	p.net.forward(x, p.z, p.s1, p.s2)
	copy(p.phi, p.z)
	p.phi[len(p.z)] = 1
	p.nz = p.nz[:0]
	for i, v := range p.phi {
		if v != 0 {
			p.nz = append(p.nz, i)
		}
	}
}

// predict returns the posterior mean and variance (in units of the noise
// scale) of arm id at p.phi. Callers hold mu.
func (p *NeuralLinear) predict(id string) (mean, variance float64) {
	if i, ok := p.idx[id]; ok {
		return p.blr[i].predict(p.phi, p.nz)
	}
	for _, j := range p.nz {
		variance += p.phi[j] * p.phi[j]
	}
	return 0, variance / p.o.Lambda
}

// posterior returns arm id's posterior mean at p.phi and the width its
// exploration uses: Scale·sd for UCB and fixed-noise Thompson, or, with
// LearnNoise, σ·sd for a σ² drawn from the arm's noise posterior (shared
// by all of one Select's draws, which are then exact given σ²). Callers
// hold mu.
func (p *NeuralLinear) posterior(id string) (mean, width float64) {
	mean, v := p.predict(id)
	if !p.o.LearnNoise {
		return mean, p.o.Scale * math.Sqrt(v)
	}
	shape, scale := float64(noisePriorShape), p.o.Scale*p.o.Scale*(noisePriorShape-1)
	if i, ok := p.idx[id]; ok {
		shape, scale = p.blr[i].noise(shape, scale)
	}
	sigma2 := scale / policy.GammaRand(p.rng, shape)
	return mean, math.Sqrt(sigma2 * v)
}

// noisePriorShape is a0 of the noise prior IG(a0, Scale²·(a0−1)), whose
// mean is Scale²: weak (worth two observations) but with a finite mean.
const noisePriorShape = 2.0

// Select implements policy.Policy. It runs the exported network in plain
// Go and reads every candidate's posterior: O(nnz(x)·h₁ + Σhᵢhᵢ₊₁ + K·p²/2)
// without allocating.
func (p *NeuralLinear) Select(_ context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if len(cands) == 0 {
		return 0, policy.ErrNoCandidates
	}
	if len(probs) < len(cands) {
		return 0, fmt.Errorf("%w: %d probs for %d candidates", policy.ErrProbsTooShort, len(probs), len(cands))
	}
	p.mu.Lock()
	x, err := p.vector(f)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	p.represent(x)
	if p.o.Draws > 1 {
		best := p.selectDraws(cands, probs)
		p.mu.Unlock()
		return best, nil
	}
	best, bestV := 0, math.Inf(-1)
	for i := range cands {
		mean, sd := p.posterior(cands[i].ID)
		s := mean + sd
		if p.o.Explore == Thompson {
			s = mean + sd*p.rng.NormFloat64()
		}
		if s > bestV {
			best, bestV = i, s
		}
	}
	p.mu.Unlock()
	for i := range cands {
		probs[i] = 0
	}
	probs[best] = 1
	return best, nil
}

// selectDraws is Thompson with Draws = M > 1: M independent draws of every
// candidate's θ̃·φ, probs the share of wins, and the winner of draw j
// played for j uniform in [0, M) — so each arm is played with exactly its
// reported share. Callers hold mu and have computed p.phi.
func (p *NeuralLinear) selectDraws(cands []decision.Arm, probs []float64) int {
	k, m := len(cands), p.o.Draws
	if cap(p.means) < k {
		p.means, p.sds = make([]float64, k), make([]float64, k)
	}
	means, sds := p.means[:k], p.sds[:k]
	for i := range cands {
		means[i], sds[i] = p.posterior(cands[i].ID)
		probs[i] = 0
	}
	play, chosen := p.rng.IntN(m), 0
	for r := 0; r < m; r++ {
		best, bestV := 0, math.Inf(-1)
		for i := 0; i < k; i++ {
			if s := means[i] + sds[i]*p.rng.NormFloat64(); s > bestV {
				best, bestV = i, s
			}
		}
		probs[best] += 1 / float64(m)
		if r == play {
			chosen = best
		}
	}
	return chosen
}

// arm returns the index of id, creating its regression from the prior
// (centred on its head when the network has one). Callers hold mu.
func (p *NeuralLinear) arm(id string) (int, error) {
	if i, ok := p.idx[id]; ok {
		return i, nil
	}
	if len(p.ids) >= maxArms {
		return 0, fmt.Errorf("policy %s: arm %q would be arm %d, more than %d", Name, id, len(p.ids)+1, maxArms)
	}
	i := len(p.ids)
	p.idx[id] = i
	p.ids = append(p.ids, id)
	p.blr = append(p.blr, newBLR(p.net.rep()+1, p.o.Lambda, p.net.headPrior(i)))
	return i, nil
}

// Update implements policy.Policy: the reward enters the replay buffer and
// the arm's regression at once; when the schedule says so, this call also
// runs a training round (outside the lock) and installs its result.
func (p *NeuralLinear) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	if len(cands) == 0 {
		return policy.ErrNoCandidates
	}
	if chosen < 0 || chosen >= len(cands) {
		return fmt.Errorf("%w: %d of %d candidates", policy.ErrBadChosen, chosen, len(cands))
	}
	if math.IsNaN(reward) || math.IsInf(reward, 0) || math.Abs(reward) > 1e100 {
		return fmt.Errorf("%w: %v for arm %q", policy.ErrBadReward, reward, cands[chosen].ID)
	}
	p.mu.Lock()
	x, err := p.vector(f)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	a, err := p.arm(cands[chosen].ID)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.buf.add(x, a, reward, 1)
	p.represent(x)
	p.blr[a].update(p.phi, p.u, reward, 1)
	p.sinceTrain++
	if p.training || p.sinceTrain < p.interval {
		p.mu.Unlock()
		return nil
	}
	job := p.startRound()
	p.mu.Unlock()
	if p.o.Async {
		go func() { _ = p.runRound(context.Background(), job) }()
		return nil
	}
	if err := p.runRound(context.Background(), job); err != nil {
		return fmt.Errorf("policy %s: reward recorded, training round failed: %w", Name, err)
	}
	return nil
}

// Wait blocks until no training round is running (rounds of Async
// policies, or one started by another goroutine's Update), or ctx ends.
func (p *NeuralLinear) Wait(ctx context.Context) error {
	p.mu.Lock()
	ch := p.done
	p.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// round is one training round's inputs, taken under the lock.
type round struct {
	gen  int64
	seen int64 // buffer rows added when the round started
	net  *mlp  // the network with a head per arm known at the start
	data *dataset
	seed uint64
	next int // the interval after this round
}

// startRound snapshots what a round needs. Callers hold mu.
func (p *NeuralLinear) startRound() *round {
	p.training = true
	p.done = make(chan struct{})
	p.sinceTrain = 0
	return &round{
		gen: p.gen, seen: p.buf.seen, net: p.net.withArms(len(p.ids)), data: p.buf.dataset(),
		seed: p.trng.Uint64(), next: min(2*p.interval, p.o.RetrainMax),
	}
}

// runRound trains, rebuilds the regressions on the new representation
// (both outside the lock) and installs them, replaying the rewards that
// arrived meanwhile.
func (p *NeuralLinear) runRound(ctx context.Context, job *round) error {
	net, st, err := train(ctx, job.net, job.data, p.trainOpts(), rand.New(rand.NewPCG(job.seed, job.seed^0xda942042e4dd58b5)))
	var blr []*blrArm
	if err == nil {
		blr, err = rebuild(net, job.data, p.o.Lambda)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.training = false
	close(p.done)
	p.done = nil
	if err != nil {
		p.trainErrs++
		p.lastErr = err
		return err
	}
	if job.gen != p.gen {
		return nil
	}
	p.install(net, blr, job.seen)
	p.interval = job.next
	p.rounds++
	p.last = st
	return nil
}

func (p *NeuralLinear) trainOpts() trainOpts {
	return trainOpts{Steps: p.o.Steps, Batch: p.o.Batch, LR: p.o.LR, L2: p.o.L2}
}

// install swaps in a trained network and the regressions rebuilt on it
// from the buffer's first `seen` rows, then adds the rows that arrived
// since (and arms first seen since). Callers hold mu.
func (p *NeuralLinear) install(net *mlp, blr []*blrArm, seen int64) {
	p.net = net
	for i := len(blr); i < len(p.ids); i++ {
		blr = append(blr, newBLR(net.rep()+1, p.o.Lambda, nil))
	}
	p.blr = blr
	for _, r := range p.buf.since(seen) {
		p.represent(p.buf.x(r))
		p.blr[p.buf.arm[r]].update(p.phi, p.u, p.buf.y[r], p.buf.w[r])
	}
}

// rebuild computes every arm's regression on net's representation from
// d's rows: A = λI + Σwφφᵀ, b = λθ₀ + Σwrφ, then A⁻¹ and θ by Cholesky.
func rebuild(net *mlp, d *dataset, lambda float64) ([]*blrArm, error) {
	pd := net.rep() + 1
	out := make([]*blrArm, net.arms)
	for a := range out {
		out[a] = newBLR(pd, lambda, net.headPrior(a))
	}
	w := net.maxWidth()
	z, s1, s2, phi := make([]float64, net.rep()), make([]float64, w), make([]float64, w), make([]float64, pd)
	phi[pd-1] = 1
	for i := 0; i < d.len(); i++ {
		net.forward(d.row(i), z, s1, s2)
		copy(phi, z)
		r, wt, y := out[d.arm[i]], d.w[i], d.y[i]
		for j, pj := range phi {
			if pj == 0 {
				continue
			}
			r.b[j] += wt * y * pj
			row := r.a[j*pd : (j+1)*pd]
			for k := j; k < pd; k++ {
				row[k] += wt * pj * phi[k]
			}
		}
		r.n += wt
		r.yy += wt * y * y
	}
	for a, r := range out {
		for j := 0; j < pd; j++ {
			for k := j + 1; k < pd; k++ {
				r.a[k*pd+j] = r.a[j*pd+k]
			}
		}
		if err := r.refactor(); err != nil {
			return nil, fmt.Errorf("arm %d regression: %w", a, err)
		}
	}
	return out, nil
}

// Stats describe a NeuralLinear's learning so far.
type Stats struct {
	// Rounds counts completed training rounds; Last is the latest one.
	Rounds int
	Last   TrainStats
	// Buffered is the number of rows in the replay buffer, Seen the rows
	// ever added.
	Buffered int
	Seen     int64
	// Arms are the arm IDs the policy has learnt about, in head order.
	Arms []string
	// TrainErrors counts failed rounds (the previous network stays);
	// LastError is the latest failure.
	TrainErrors int
	LastError   error
}

// Stats returns the policy's learning statistics.
func (p *NeuralLinear) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Rounds: p.rounds, Last: p.last, Buffered: p.buf.size, Seen: p.buf.seen, Arms: append([]string(nil), p.ids...), TrainErrors: p.trainErrs, LastError: p.lastErr}
}

// Train runs a training round now on the replay buffer, whatever the
// schedule, and installs it; it returns the round's statistics. It fails
// when a round is already running or the buffer is empty.
func (p *NeuralLinear) Train(ctx context.Context) (TrainStats, error) {
	p.mu.Lock()
	if p.training {
		p.mu.Unlock()
		return TrainStats{}, errors.New("policy " + Name + ": a training round is already running")
	}
	if p.buf.size == 0 {
		p.mu.Unlock()
		return TrainStats{}, errors.New("policy " + Name + ": nothing to train on (empty replay buffer)")
	}
	job := p.startRound()
	job.next = p.interval
	p.mu.Unlock()
	if err := p.runRound(ctx, job); err != nil {
		return TrainStats{}, fmt.Errorf("policy %s: training round: %w", Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, nil
}
