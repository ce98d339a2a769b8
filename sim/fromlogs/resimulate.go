package fromlogs

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// Clock says how a trace's wall-clock times land on a scenario's virtual
// clock (whose time windows — outages, bursts — count from its start, and
// whose hour-of-day modifiers read the UTC hour).
type Clock int

const (
	// ClockAuto is ClockScenario when the first logged request falls within
	// a day after the scenario's start (logs of a simulation of that
	// scenario, or a calibrated scenario), ClockLogs otherwise.
	ClockAuto Clock = iota
	// ClockScenario keeps the scenario's start: a request logged at time t
	// arrives t − start into the run. A request before the start is an error.
	ClockScenario
	// ClockLogs moves the scenario's start to the first logged request, so
	// its time windows count from there.
	ClockLogs
)

// ParseClock parses "auto", "scenario" or "logs".
func ParseClock(s string) (Clock, error) {
	switch s {
	case "", "auto":
		return ClockAuto, nil
	case "scenario":
		return ClockScenario, nil
	case "logs":
		return ClockLogs, nil
	}
	return 0, fmt.Errorf("clock %q: want auto, scenario or logs", s)
}

// String returns the name ParseClock takes.
func (c Clock) String() string {
	switch c {
	case ClockScenario:
		return "scenario"
	case ClockLogs:
		return "logs"
	}
	return "auto"
}

// Anchor puts the trace on sc's clock as c says: it returns the scenario
// to run (a copy of sc, starting at the first logged request under
// ClockLogs) and the trace with offsets from that scenario's start. It also
// checks that the scenario serves every logged task type (Check). The
// returned scenario is a validated copy; sc is not modified.
func (t *Trace) Anchor(sc *sim.Scenario, c Clock) (*sim.Scenario, sim.Trace, error) {
	if t.Len() == 0 {
		return nil, nil, fmt.Errorf("the trace is empty")
	}
	// Validate fills defaults: work on a copy, which callers may share.
	cp := *sc
	cp.Providers = slices.Clone(sc.Providers)
	if err := cp.Validate(); err != nil {
		return nil, nil, err
	}
	if err := t.Check(&cp); err != nil {
		return nil, nil, err
	}
	first, start := t.First(), cp.StartTime()
	if c == ClockAuto {
		c = ClockLogs
		if !first.Before(start) && first.Sub(start) < 24*time.Hour {
			c = ClockScenario
		}
	}
	if c == ClockLogs {
		cp.Start = first.Format(time.RFC3339Nano)
		if err := cp.Validate(); err != nil {
			return nil, nil, err
		}
	}
	v, err := t.Since(cp.StartTime())
	if err != nil {
		return nil, nil, fmt.Errorf("scenario %q: %w (use the logs' clock)", cp.Name, err)
	}
	return &cp, v, nil
}

// ResimulateOpts configures Resimulate.
type ResimulateOpts struct {
	// Seed drives the providers' noise (and the draws of token counts the
	// log does not know), as sim.Opts.Seed.
	Seed uint64
	// Requests replays the first Requests requests of the trace; 0 all.
	Requests int
	// Window is sim.Opts.Window.
	Window int
	// Encoder, optional, fills the feature vectors of contextual policies.
	Encoder policy.Encoder
	// Clock maps the logged times onto the scenario's clock.
	Clock Clock
}

// Resimulate is counterfactual re-simulation: it runs every target, as
// sim.Run does — learning online from rewards that arrive at virtual
// completion times — on exactly the logged requests of tr (their arrival
// times, task mix, tenants, tags and token counts), served by sc's
// providers (a scenario, or one fitted to the logs by Calibrate), and
// returns one sim.Result per target, labelled with the target's name. All
// targets see the same requests and the same latent provider draws. The
// targets' policies are used as given: pass fresh ones.
func Resimulate(ctx context.Context, tr *Trace, sc *sim.Scenario, targets []replay.Target, o ResimulateOpts) ([]*sim.Result, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("resimulate: no target policy")
	}
	if o.Requests < 0 || o.Requests > tr.Len() {
		return nil, fmt.Errorf("resimulate: requests %d outside [0, %d] (the logged requests)", o.Requests, tr.Len())
	}
	run, view, err := tr.Anchor(sc, o.Clock)
	if err != nil {
		return nil, fmt.Errorf("resimulate: %w", err)
	}
	out := make([]*sim.Result, 0, len(targets))
	for _, t := range targets {
		name := t.Name
		if name == "" {
			name = t.Policy.Name()
		}
		res, err := sim.Run(ctx, sim.Opts{Scenario: run, Policy: t.Policy, Seed: o.Seed, Requests: o.Requests,
			Window: o.Window, Encoder: o.Encoder, Trace: view})
		if err != nil {
			return nil, fmt.Errorf("resimulate %s: %w", name, err)
		}
		res.Policy = name
		out = append(out, res)
	}
	return out, nil
}

// FittedOpts configures ResimulateFitted.
type FittedOpts struct {
	// Seed drives the traffic and the providers' noise, as sim.Opts.Seed.
	Seed uint64
	// Requests is how many requests to simulate; 0 means the scenario's.
	Requests int
	// Encoder, optional, fills the feature vectors of contextual policies.
	Encoder policy.Encoder
}

// ResimulateFitted runs every target through sc on fresh traffic — sc is
// typically Calibrate's scenario, whose arrival process is fitted to the
// logs — and returns one sim.Result per target, labelled with the target's
// name. All targets see the same traffic (one seed). The targets' policies
// are used as given: pass fresh ones.
func ResimulateFitted(ctx context.Context, sc *sim.Scenario, targets []replay.Target, o FittedOpts) ([]*sim.Result, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("resimulate: no target policy")
	}
	if sc == nil {
		return nil, fmt.Errorf("resimulate: no scenario")
	}
	if o.Requests < 0 {
		return nil, fmt.Errorf("resimulate: requests %d must be >= 0", o.Requests)
	}
	out := make([]*sim.Result, 0, len(targets))
	for _, t := range targets {
		name := t.Name
		if name == "" {
			name = t.Policy.Name()
		}
		res, err := sim.Run(ctx, sim.Opts{Scenario: sc, Policy: t.Policy, Seed: o.Seed, Requests: o.Requests, Encoder: o.Encoder})
		if err != nil {
			return nil, fmt.Errorf("resimulate %s: %w", name, err)
		}
		res.Policy = name
		out = append(out, res)
	}
	return out, nil
}
