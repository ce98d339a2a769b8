// Package sim is routelab's discrete-event simulator: synthetic LLM traffic
// served by simulated providers on a virtual clock (no sleeping — time is a
// value that arrivals and completions advance), routed request by request
// through the decision core, route.Core, exactly as the gateway routes real
// traffic.
//
// A Scenario (YAML, see docs/scenarios.md; built-ins are embedded and
// listed by BuiltinScenarios) describes
//
//   - traffic: Poisson arrivals with a diurnal rate curve and bursts, a task
//     mix, tenants, and log-normal prompt and completion lengths;
//   - providers (the arms): log-normal latency plus per-token time, a
//     capacity beyond which requests queue (FIFO over Capacity servers), a
//     token-bucket rate limit answering 429s, an error rate, a price per 1k
//     tokens, a quality per task type (the probability that an answer is
//     right), and modifiers that change any of these by time window, hour
//     of day, task, tenant or prompt length (outages, drift, night prices).
//
// The main call:
//
//	sc, err := sim.LoadScenario("steady") // or a path to a YAML file
//	res, err := sim.Run(ctx, sim.Opts{Scenario: sc, Policy: p, Seed: 1, Requests: 100_000})
//	fmt.Println(res.MeanReward, res.OracleMeanReward, res.Regret)
//
// Opts.Trace replaces the generated traffic by a recorded request
// sequence (arrival offsets, features, completion lengths when known), for
// counterfactual re-simulation of logged traffic (package sim/fromlogs builds
// traces from decision logs); the providers, reward and oracle still come
// from the scenario:
//
//	res, err := sim.Run(ctx, sim.Opts{Scenario: sc, Policy: p, Seed: 1, Trace: sim.TraceSlice(reqs)})
//
// Each request takes the one decision path, route.Core, in two halves on
// a virtual clock whose Now is the core's clock: at its arrival time the
// core decides (rule filter, policy, shadow) and the simulator's
// route.Actor serves the choice on the simulated provider, which fixes the
// outcome and the completion time; when the clock reaches that time,
// route.Core.Complete computes the reward, updates the policy and logs
// the record. The simulator computes no reward of its own (but the
// oracle's expectations), filters nothing and updates no policy, so the
// policy learns only from requests that have finished, as in production.
// Opts.ImmediateFeedback completes each request before the next one.
//
// The simulator knows every arm's true expected reward for every request
// given the providers' state at that moment (queue, rate limit, outage,
// price, quality, latency distribution), so a Result reports the oracle's
// mean reward and the regret of the policy against it. See oracle.go for
// the model and the numerical approximation. In a Stateful scenario (rate
// limits, queues the traffic can fill) that state follows the policy's
// own choices, so the oracle is policy-dependent (Result.OracleStateDependent)
// and "% of oracle" can rank policies the wrong way round; FixedArmValues
// runs every arm alone on the same seed for a policy-independent reference.
//
// Randomness: Opts.Seed drives a traffic stream and counter-based
// per-(request, arm) noise, separate from the policy's own seed
// (PolicySeed derives one), so two policies on one seed see the same
// requests and the same latent latency, error and quality draws (common
// random numbers), and one policy on one seed gives byte-identical results.
package sim
