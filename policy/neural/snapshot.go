package neural

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/routelab/routelab/policy"
)

// maxSnapshotBytes bounds what Restore reads.
const maxSnapshotBytes = 1 << 30

// envelope is policy's snapshot envelope (see policy "Snapshots"), written
// here because policy keeps its helpers unexported; policy.Load reads it.
type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Policy  string          `json:"policy"`
	Params  policy.Params   `json:"params"`
	State   json.RawMessage `json:"state"`
}

type layerJSON struct {
	In  int       `json:"in"`
	Out int       `json:"out"`
	W   []float64 `json:"w"`
	B   []float64 `json:"b"`
}

// netJSON is the exported network: the trunk's layers (W row-major
// in×out) and the heads (rep×arms row-major, one column per arm in the
// order of the state's arms).
type netJSON struct {
	In     int         `json:"in"`
	Layers []layerJSON `json:"layers"`
	Arms   int         `json:"arms"`
	HeadW  []float64   `json:"head_w"`
	HeadB  []float64   `json:"head_b"`
}

type armJSON struct {
	ID    string    `json:"id"`
	N     float64   `json:"n"`
	YY    float64   `json:"sum_sq"`
	PQ    float64   `json:"prior_sq"`
	A     []float64 `json:"a"`
	AInv  []float64 `json:"a_inv"`
	B     []float64 `json:"b"`
	Theta []float64 `json:"theta"`
}

type rowJSON struct {
	X   []float64 `json:"x"`
	Arm int       `json:"arm"`
	R   float64   `json:"r"`
	W   float64   `json:"w"`
}

type state struct {
	Dim        int        `json:"dim"`
	RNG        []byte     `json:"rng"`
	TrainRNG   []byte     `json:"train_rng"`
	Net        *netJSON   `json:"net"`
	Arms       []armJSON  `json:"arms"`
	Seen       int64      `json:"seen"`
	Buffer     []rowJSON  `json:"buffer"`
	SinceTrain int        `json:"since_train"`
	Interval   int        `json:"interval"`
	Rounds     int        `json:"rounds"`
	Last       TrainStats `json:"last"`
}

func exportNet(m *mlp) *netJSON {
	n := &netJSON{In: m.in, Arms: m.arms, HeadW: slices.Clone(m.headW), HeadB: slices.Clone(m.headB)}
	if n.HeadW == nil {
		n.HeadW, n.HeadB = []float64{}, []float64{}
	}
	for _, l := range m.layers {
		n.Layers = append(n.Layers, layerJSON{In: l.in, Out: l.out, W: slices.Clone(l.w), B: slices.Clone(l.b)})
	}
	return n
}

func importNet(n *netJSON) *mlp {
	m := &mlp{in: n.In, arms: n.Arms, headW: slices.Clone(n.HeadW), headB: slices.Clone(n.HeadB)}
	for _, l := range n.Layers {
		m.layers = append(m.layers, layer{in: l.In, out: l.Out, w: slices.Clone(l.W), b: slices.Clone(l.B)})
	}
	return m
}

// Snapshot implements policy.Snapshotter: the network's weights, every
// arm's regression, the replay buffer, the schedule and both random
// streams, so a restored policy decides and learns exactly as this one
// would have. A round running meanwhile is not included: the snapshot
// holds the state before it.
func (p *NeuralLinear) Snapshot(w io.Writer) error {
	p.mu.Lock()
	st := state{Dim: p.dim, SinceTrain: p.sinceTrain, Interval: p.interval, Rounds: p.rounds, Last: p.last, Seen: p.buf.seen, Arms: []armJSON{}, Buffer: []rowJSON{}}
	var err error
	if st.RNG, err = p.src.MarshalBinary(); err == nil {
		st.TrainRNG, err = p.tsrc.MarshalBinary()
	}
	if p.net != nil {
		st.Net = exportNet(p.net)
	}
	for i, id := range p.ids {
		r := p.blr[i]
		st.Arms = append(st.Arms, armJSON{ID: id, N: r.n, YY: r.yy, PQ: r.pq, A: slices.Clone(r.a), AInv: slices.Clone(r.ainv), B: slices.Clone(r.b), Theta: slices.Clone(r.theta)})
	}
	for k := 0; k < p.buf.size; k++ {
		i := p.buf.pos(k)
		st.Buffer = append(st.Buffer, rowJSON{X: slices.Clone(p.buf.x(i)), Arm: int(p.buf.arm[i]), R: p.buf.y[i], W: p.buf.w[i]})
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("snapshot %s: rng: %w", Name, err)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("snapshot %s: encode state: %w", Name, err)
	}
	b, err := json.Marshal(envelope{Format: policy.SnapshotFormat, Version: policy.SnapshotVersion, Policy: Name, Params: p.o.params(), State: raw})
	if err != nil {
		return fmt.Errorf("snapshot %s: encode: %w", Name, err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("snapshot %s: write: %w", Name, err)
	}
	return nil
}

// Spec implements policy.SpecReporter: the registry name and parameters
// (without seed) that snapshots record, so that a floor-wrapped
// NeuralLinear's snapshot loads with its parameters.
func (p *NeuralLinear) Spec() policy.Spec {
	return policy.Spec{Name: Name, Params: p.o.params()}
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", policy.ErrSnapshot, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON object", policy.ErrSnapshot)
	}
	return nil
}

// Restore implements policy.Snapshotter. It validates everything — the
// envelope, the parameters, the network's shapes and values, every
// regression (A·A⁻¹ ≈ I), the buffer's rows and the generators — before
// touching the policy, so a failed Restore changes nothing. A round
// running meanwhile is discarded.
func (p *NeuralLinear) Restore(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("%w: read: %w", policy.ErrSnapshot, err)
	}
	if len(data) > maxSnapshotBytes {
		return fmt.Errorf("%w: larger than %d bytes", policy.ErrSnapshot, maxSnapshotBytes)
	}
	var env envelope
	if err := strictJSON(data, &env); err != nil {
		return err
	}
	switch {
	case env.Format != policy.SnapshotFormat:
		return fmt.Errorf("%w: format %q, want %q", policy.ErrSnapshot, env.Format, policy.SnapshotFormat)
	case env.Version != policy.SnapshotVersion:
		return fmt.Errorf("%w: version %d, this build reads version %d", policy.ErrSnapshot, env.Version, policy.SnapshotVersion)
	case env.Policy != Name:
		return fmt.Errorf("%w: snapshot of policy %q, cannot restore into %q", policy.ErrSnapshot, env.Policy, Name)
	case !maps.Equal(env.Params, p.o.params()):
		return fmt.Errorf("%w: policy %s: parameters %v differ from the policy's %v", policy.ErrSnapshot, Name, env.Params, p.o.params())
	}
	var st state
	if err := strictJSON(env.State, &st); err != nil {
		return fmt.Errorf("policy %s state: %w", Name, err)
	}
	n, err := p.fromState(&st)
	if err != nil {
		return fmt.Errorf("%w: policy %s: %w", policy.ErrSnapshot, Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adopt(n)
	return nil
}

// adopt installs the learned state of n (a validated, unshared policy).
// Callers hold mu; a running round's result will be dropped.
func (p *NeuralLinear) adopt(n *NeuralLinear) {
	p.dim, p.net, p.ids, p.idx, p.blr, p.buf = n.dim, n.net, n.ids, n.idx, n.blr, n.buf
	*p.src, *p.tsrc = *n.src, *n.tsrc
	p.sinceTrain, p.interval, p.rounds, p.last = n.sinceTrain, n.interval, n.rounds, n.last
	p.z, p.s1, p.s2, p.phi, p.u, p.nz = n.z, n.s1, n.s2, n.phi, n.u, n.nz
	p.gen++
}

// fromState validates st against p's options and builds a fresh policy
// holding it; p is not modified.
func (p *NeuralLinear) fromState(st *state) (*NeuralLinear, error) {
	n, err := NewNeuralLinear(p.o)
	if err != nil {
		return nil, err
	}
	if err := n.src.UnmarshalBinary(st.RNG); err != nil {
		return nil, fmt.Errorf("rng: %w", err)
	}
	if err := n.tsrc.UnmarshalBinary(st.TrainRNG); err != nil {
		return nil, fmt.Errorf("train_rng: %w", err)
	}
	if st.Dim < 0 || st.Dim > maxDim || (p.o.Dim != 0 && st.Dim != p.o.Dim) {
		return nil, fmt.Errorf("dim %d, policy has dim %d", st.Dim, p.o.Dim)
	}
	if !(st.Interval >= p.o.Retrain && st.Interval <= p.o.RetrainMax) || st.SinceTrain < 0 || st.Rounds < 0 || st.Seen < int64(len(st.Buffer)) {
		return nil, fmt.Errorf("schedule: interval %d, since_train %d, rounds %d, seen %d with %d buffered rows", st.Interval, st.SinceTrain, st.Rounds, st.Seen, len(st.Buffer))
	}
	n.sinceTrain, n.interval, n.rounds, n.last = st.SinceTrain, st.Interval, st.Rounds, st.Last
	if st.Dim == 0 {
		if st.Net != nil || len(st.Arms) > 0 || len(st.Buffer) > 0 {
			return nil, fmt.Errorf("dim 0 with a network, arms or buffered rows")
		}
		return n, nil
	}
	if st.Net == nil {
		return nil, fmt.Errorf("dim %d without a network", st.Dim)
	}
	net := importNet(st.Net)
	if err := net.validate(); err != nil {
		return nil, fmt.Errorf("net: %w", err)
	}
	if net.in != st.Dim || len(net.layers) != len(p.o.Hidden) {
		return nil, fmt.Errorf("net: input %d and %d layers, policy has dim %d and hidden %s", net.in, len(net.layers), st.Dim, hiddenString(p.o.Hidden))
	}
	for i, l := range net.layers {
		if l.out != p.o.Hidden[i] {
			return nil, fmt.Errorf("net: layer %d has width %d, policy has hidden %s", i, l.out, hiddenString(p.o.Hidden))
		}
	}
	if net.arms > len(st.Arms) {
		return nil, fmt.Errorf("net has %d heads for %d arms", net.arms, len(st.Arms))
	}
	if len(st.Arms) > maxArms {
		return nil, fmt.Errorf("%d arms, at most %d", len(st.Arms), maxArms)
	}
	if len(st.Buffer) > p.o.Buffer {
		return nil, fmt.Errorf("%d buffered rows exceed buffer %d", len(st.Buffer), p.o.Buffer)
	}
	n.dim, n.net = st.Dim, net
	n.buf = newRing(p.o.Buffer, st.Dim)
	n.scratch()
	pd := net.rep() + 1
	for i, a := range st.Arms {
		if a.ID == "" {
			return nil, fmt.Errorf("arms[%d]: empty id", i)
		}
		if _, dup := n.idx[a.ID]; dup {
			return nil, fmt.Errorf("arms[%d]: id %q twice", i, a.ID)
		}
		if len(a.A) != pd*pd || len(a.AInv) != pd*pd || len(a.B) != pd || len(a.Theta) != pd {
			return nil, fmt.Errorf("arms[%d] %q: sizes do not match representation %d+1", i, a.ID, net.rep())
		}
		if !finite(a.A...) || !finite(a.AInv...) || !finite(a.B...) || !finite(a.Theta...) || !(a.N >= 0) || math.IsInf(a.N, 0) || !(a.YY >= 0) || math.IsInf(a.YY, 0) || !(a.PQ >= 0) || math.IsInf(a.PQ, 0) {
			return nil, fmt.Errorf("arms[%d] %q: non-finite or negative statistics", i, a.ID)
		}
		if err := policy.CheckInverse(a.A, a.AInv, pd); err != nil {
			return nil, fmt.Errorf("arms[%d] %q: %w", i, a.ID, err)
		}
		n.idx[a.ID] = i
		n.ids = append(n.ids, a.ID)
		n.blr = append(n.blr, &blrArm{n: a.N, yy: a.YY, pq: a.PQ, a: slices.Clone(a.A), ainv: slices.Clone(a.AInv), b: slices.Clone(a.B), theta: slices.Clone(a.Theta)})
	}
	for i, r := range st.Buffer {
		if len(r.X) != st.Dim || r.Arm < 0 || r.Arm >= len(st.Arms) || !finite(r.X...) || !finite(r.R, r.W) || !(r.W > 0) {
			return nil, fmt.Errorf("buffer[%d]: bad row (x of %d dims, arm %d of %d, r %v, w %v)", i, len(r.X), r.Arm, len(st.Arms), r.R, r.W)
		}
		for _, v := range r.X {
			if math.Abs(v) > maxInput {
				return nil, fmt.Errorf("buffer[%d]: feature %v beyond ±%g", i, v, maxInput)
			}
		}
		n.buf.add(r.X, r.Arm, r.R, r.W)
	}
	n.buf.seen = st.Seen
	return n, nil
}

// newRand is a seeded generator (offline fits).
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
