package experiments

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// Opts configures Run.
type Opts struct {
	// Registry builds the policies from their specs; required. The program
	// builds it (cmd/routelab), so that this package needs no knowledge of
	// which policies exist.
	Registry *policy.Registry
	// Parallel is the number of cells simulated at once; 0 means
	// GOMAXPROCS. Results do not depend on it.
	Parallel int
	// Encoder builds the feature encoder of a scenario's requests, for
	// contextual policies; nil means DefaultEncoder.
	Encoder func(*sim.Scenario) (policy.Encoder, error)
	// Progress, optional, is called after each finished cell with the
	// number done so far and the total. Calls are serialised.
	Progress func(done, total int)
	// KeepTrained keeps the policy of each (scenario, policy) pair's
	// first-seed cell as it ended the run (Cell.Trained), so that the
	// caller can save the best one (routelab experiment writes it as a
	// policy artifact). Other cells drop theirs, bounding memory.
	KeepTrained bool
}

// DefaultEncoder is the feature encoder `routelab sim` uses: the
// scenario's spec (its `encoder:` block or policy.DefaultEncoderSpec over
// its tasks), built by policy.NewEncoder.
func DefaultEncoder(sc *sim.Scenario) (policy.Encoder, error) {
	return policy.NewEncoder(sc.EncoderSpec())
}

// Cell is one simulation of the grid: a policy on a scenario with a seed.
type Cell struct {
	Scenario string
	// Policy is the policy's label; PolicySpec the spec it was built from,
	// including the seed it ran with.
	Policy     string
	PolicySpec string
	Seed       uint64
	PolicySeed uint64
	Result     *sim.Result
	// Trained is the cell's policy after the run, learned state included:
	// set only with Opts.KeepTrained and only on the first seed's cells.
	Trained policy.Policy

	// taskCounts are the per-task arm counts per window, for scenarios
	// with several tasks.
	taskCounts taskCounts
}

// Results are an experiment's cells, in spec order: scenario, then policy,
// then seed.
type Results struct {
	Spec  *Spec
	Cells []Cell
	// Started and Elapsed are wall-clock facts of the run, for the report.
	Started time.Time
	Elapsed time.Duration
	// Workers is the number of cells that ran at once.
	Workers int
}

type cellKey struct {
	scenario, policy, seed int
}

// Run validates spec and simulates every (scenario, policy, seed) cell as an
// independent sim.Run on a pool of o.Parallel workers. A cell's policy is
// built fresh from its spec with seed sim.PolicySeed(seed) unless the spec
// sets one, so every cell is a deterministic function of the spec and its
// seed, and all policies on one seed see the same traffic and latent draws
// (common random numbers): differences between policies on a seed are
// paired. The first failing cell, or ctx's cancellation, stops the run and
// is returned.
func Run(ctx context.Context, spec *Spec, o Opts) (*Results, error) {
	return run(ctx, spec, o, nil)
}

// run is Run over the cells whose grid index keep accepts (all when keep
// is nil); the other entries of Results.Cells stay zero.
func run(ctx context.Context, spec *Spec, o Opts, keep func(idx int) bool) (*Results, error) {
	if spec == nil {
		return nil, errors.New("experiments: no spec")
	}
	if err := spec.Validate(o.Registry); err != nil {
		return nil, err
	}
	newEnc := o.Encoder
	if newEnc == nil {
		newEnc = DefaultEncoder
	}
	workers := o.Parallel
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	seeds := spec.Seeds.Values()
	nSc, nPol, nSeed := len(spec.scenarios), len(spec.policies), len(seeds)
	total := nSc * nPol * nSeed
	kept := total
	if keep != nil {
		kept = 0
		for i := range total {
			if keep(i) {
				kept++
			}
		}
	}
	workers = max(1, min(workers, kept))

	res := &Results{Spec: spec, Cells: make([]Cell, total), Started: time.Now(), Workers: workers}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	jobs := make(chan cellKey)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel(err)
	}
	for range workers {
		wg.Go(func() {
			for k := range jobs {
				idx := (k.scenario*nPol+k.policy)*nSeed + k.seed
				c, err := runCell(ctx, spec, newEnc, k, seeds[k.seed])
				if err != nil {
					fail(err)
					continue
				}
				if !o.KeepTrained || k.seed != 0 {
					c.Trained = nil
				}
				res.Cells[idx] = c
				if o.Progress != nil {
					mu.Lock()
					done++
					o.Progress(done, kept)
					mu.Unlock()
				}
			}
		})
	}
feed:
	for s := range nSc {
		for p := range nPol {
			for i := range nSeed {
				if keep != nil && !keep((s*nPol+p)*nSeed+i) {
					continue
				}
				select {
				case jobs <- cellKey{s, p, i}:
				case <-ctx.Done():
					break feed
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(res.Started)
	if firstErr != nil {
		return nil, fmt.Errorf("experiment %q: %w", spec.Name, firstErr)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("experiment %q: %w", spec.Name, err)
	}
	return res, nil
}

// runCell simulates one cell with a fresh policy and encoder.
func runCell(ctx context.Context, spec *Spec, newEnc func(*sim.Scenario) (policy.Encoder, error), k cellKey, seed uint64) (Cell, error) {
	sc := spec.scenarios[k.scenario]
	label := spec.Policies[k.policy].Label
	where := fmt.Sprintf("cell (scenario %q, policy %q, seed %d)", sc.Name, label, seed)
	ps := policy.Spec{Name: spec.policies[k.policy].Name, Params: maps.Clone(spec.policies[k.policy].Params)}
	if ps.Params == nil {
		ps.Params = policy.Params{}
	}
	if _, ok := ps.Params["seed"]; !ok {
		ps.Params["seed"] = strconv.FormatUint(sim.PolicySeed(seed), 10)
	}
	pseed, err := ps.Params.Uint64("seed", 0)
	if err != nil {
		return Cell{}, fmt.Errorf("%s: %w", where, err)
	}
	p, err := spec.registry.New(ps)
	if err != nil {
		return Cell{}, fmt.Errorf("%s: build policy: %w", where, err)
	}
	enc, err := newEnc(sc)
	if err != nil {
		return Cell{}, fmt.Errorf("%s: feature encoder: %w", where, err)
	}
	var tc *taskCounter
	if taskDependent(sc) {
		tc = newTaskCounter(sc.Tasks())
	}
	r, err := sim.Run(ctx, sim.Opts{
		Scenario:          sc,
		Policy:            p,
		Seed:              seed,
		Requests:          spec.RequestsFor(k.scenario),
		Window:            spec.Window,
		Encoder:           enc,
		ImmediateFeedback: spec.ImmediateFeedback,
		Sink:              sinkOf(tc),
	})
	if err != nil {
		return Cell{}, fmt.Errorf("%s: %w", where, err)
	}
	c := Cell{Scenario: sc.Name, Policy: label, PolicySpec: ps.String(), Seed: seed, PolicySeed: pseed, Result: r, Trained: p}
	if tc != nil {
		c.taskCounts = tc.counts(r)
	}
	return c, nil
}
