package policy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
)

// Snapshots of the foundation policies (random, weighted, ε-greedy, UCB1).

var (
	_ Snapshotter = (*Random)(nil)
	_ Snapshotter = (*Weighted)(nil)
	_ Snapshotter = (*EpsilonGreedy)(nil)
	_ Snapshotter = (*UCB1)(nil)
)

type rngState struct {
	RNG []byte `json:"rng"`
}

type rngArmsState struct {
	RNG  []byte    `json:"rng"`
	Arms []armJSON `json:"arms"`
}

type armsState struct {
	Arms []armJSON `json:"arms"`
}

// snapshotArms writes the state of a policy whose learning is an arm table
// (and, when rng is not nil, a random generator), guarded by mu.
func snapshotArms(w io.Writer, spec Spec, mu *sync.Mutex, rng *prng, arms *armTable) error {
	mu.Lock()
	var st any
	if rng != nil {
		st = rngArmsState{RNG: rng.state(), Arms: arms.export()}
	} else {
		st = armsState{Arms: arms.export()}
	}
	mu.Unlock()
	return writeSnapshot(w, spec, st)
}

// restoreArms is the inverse of snapshotArms. check, optional, rejects arm
// statistics the policy cannot use. Nothing changes unless all of it is valid.
func restoreArms(r io.Reader, spec Spec, mu *sync.Mutex, rng *prng, arms *armTable, check func(armStats) error) error {
	var st rngArmsState
	if err := readSnapshot(r, spec, &st); err != nil {
		return err
	}
	var pcg rand.PCG
	if rng != nil {
		var err error
		if pcg, err = parsePRNG(st.RNG); err != nil {
			return fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
	}
	table, err := importArms(st.Arms, check)
	if err != nil {
		return err
	}
	mu.Lock()
	if rng != nil {
		rng.set(pcg)
	}
	*arms = table
	mu.Unlock()
	return nil
}

func (p *Random) spec() Spec { return Spec{Name: "random", Params: Params{}} }

// Snapshot implements Snapshotter; Random's only state is its generator.
func (p *Random) Snapshot(w io.Writer) error {
	p.mu.Lock()
	st := rngState{RNG: p.rng.state()}
	p.mu.Unlock()
	return writeSnapshot(w, p.spec(), st)
}

// Restore implements Snapshotter.
func (p *Random) Restore(r io.Reader) error {
	var st rngState
	if err := readSnapshot(r, p.spec(), &st); err != nil {
		return err
	}
	pcg, err := parsePRNG(st.RNG)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	p.mu.Lock()
	p.rng.set(pcg)
	p.mu.Unlock()
	return nil
}

func (w *Weighted) spec() Spec {
	return Spec{Name: "weighted", Params: Params{
		"latency": ff(w.Latency), "accuracy": ff(w.Accuracy), "cost": ff(w.Cost), "out_tokens": strconv.Itoa(w.OutTokens),
	}}
}

// Snapshot implements Snapshotter. Weighted learns nothing; its snapshot
// records the weights so Load rebuilds the same formula.
func (w *Weighted) Snapshot(wr io.Writer) error { return writeSnapshot(wr, w.spec(), struct{}{}) }

// Restore implements Snapshotter: it checks that the snapshot is of the
// same weights.
func (w *Weighted) Restore(r io.Reader) error {
	var st struct{}
	return readSnapshot(r, w.spec(), &st)
}

func (p *EpsilonGreedy) spec() Spec {
	return Spec{Name: "epsilon-greedy", Params: Params{"epsilon": ff(p.epsilon)}}
}

// Snapshot implements Snapshotter.
func (p *EpsilonGreedy) Snapshot(w io.Writer) error {
	return snapshotArms(w, p.spec(), &p.mu, &p.rng, &p.arms)
}

// Restore implements Snapshotter.
func (p *EpsilonGreedy) Restore(r io.Reader) error {
	return restoreArms(r, p.spec(), &p.mu, &p.rng, &p.arms, nil)
}

func (p *UCB1) spec() Spec { return Spec{Name: "ucb1", Params: Params{"c": ff(p.c)}} }

// Snapshot implements Snapshotter.
func (p *UCB1) Snapshot(w io.Writer) error {
	return snapshotArms(w, p.spec(), &p.mu, nil, &p.arms)
}

// Restore implements Snapshotter.
func (p *UCB1) Restore(r io.Reader) error {
	return restoreArms(r, p.spec(), &p.mu, nil, &p.arms, nil)
}
