// Package fromlogs builds simulations out of decision logs: it fits a
// scenario to logged traffic and providers (Calibrate), turns the logged
// requests into a replayable trace (BuildTrace, Trace.Anchor), and runs
// target policies through the simulator on that traffic (Resimulate, or
// ResimulateFitted on fresh traffic from a fitted scenario).
//
// It reads logs through replay.Source, so any source — replay.Records, or
// offline.LogSource over log files with feedback joined — will do:
//
//	cal, err := fromlogs.Calibrate(ctx, src, fromlogs.CalibrateOpts{Seed: 1})
//	tr, err := fromlogs.BuildTrace(ctx, src, fromlogs.TraceOpts{})
//	run, _, err := tr.Anchor(cal.Scenario, fromlogs.ClockAuto)
//	res, err := fromlogs.Resimulate(ctx, tr, cal.Scenario, targets, fromlogs.ResimulateOpts{Seed: 1})
//
// # Counterfactual re-simulation
//
// Resimulate runs other policies through the simulator on exactly the
// logged traffic: BuildTrace reads the log into a Trace (per decision its
// arrival time, task, tenant, tags, prompt length and, when answered,
// completion length; sorted by arrival, about 32 bytes per request in
// memory, at most DefaultMaxTraceRows unless TraceOpts.MaxRows says
// otherwise), and each target learns online, as in sim.Run, on those
// requests served by a scenario's providers — a named scenario, or one
// fitted to the same logs by Calibrate:
//
//	tr, err := fromlogs.BuildTrace(ctx, src, fromlogs.TraceOpts{})
//	res, err := fromlogs.Resimulate(ctx, tr, sc, targets, fromlogs.ResimulateOpts{Seed: 1})
//
// The scenario must know every logged task type (an error lists those it
// does not). Logged tenants are hashes; TraceOpts.Tenants maps them back to
// a scenario's names. The Clock option lays the logged times on the
// scenario's clock (its own start, or the first logged request). What the
// log does not know — the completion length of a failed request — is
// drawn from the scenario, seeded. Requests the caller forced to a model
// stay forced unless TraceOpts.RouteForced.
//
// # Calibration
//
// Calibrate fits a simulator scenario (package sim) to logs — per provider
// the latency model, failure rates by hour and outage windows, prices and
// quality per task; the traffic's rate, diurnal curve, task and tenant mix
// and token lengths — and reports the Kolmogorov–Smirnov distance between
// logged and fitted latencies, so that the simulator reproduces what
// production saw:
//
//	cal, err := fromlogs.Calibrate(ctx, src, fromlogs.CalibrateOpts{Name: "prod"})
//	res, err := sim.Run(ctx, sim.Opts{Scenario: cal.Scenario, Policy: p, Seed: 1})
//
// ResimulateFitted runs the targets on fresh traffic from a scenario fitted
// by Calibrate instead of the logged requests.
//
// Off-policy evaluation of the same logs is package replay's job; the
// simulator itself is package sim, which this package builds on (sim never
// imports it).
package fromlogs
