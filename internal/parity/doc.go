// Package parity holds only tests: they check that the simulator, the
// gateway and the datasets evaluator, each building its feature encoder
// the way its command does (from a scenario, a gateway config, a spec),
// hand a contextual policy byte-identical vectors for the same request and
// therefore get the same decisions from it; and that one policy artifact,
// restored by `routelab sim --policy-file`, the gateway's `policy: {file:}`
// and `routelab replay --policy-file` (on the Parquet log), makes
// byte-identical decisions on the same features (TestArtifactParity). It
// may import every package.
package parity
