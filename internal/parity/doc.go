// Package parity holds only tests: they check that the simulator, the
// gateway and the datasets evaluator, each building its feature encoder
// the way its command does (from a scenario, a gateway config, a spec),
// hand a contextual policy byte-identical vectors for the same request and
// therefore get the same decisions from it. It may import every package.
package parity
