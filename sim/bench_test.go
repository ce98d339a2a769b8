package sim_test

import (
	"context"
	"testing"

	"github.com/routelab/routelab/sim"
)

// BenchmarkRun measures the simulator's throughput: one op is one request
// through the whole path (traffic, Decide, oracle, act, Complete with
// policy update). decisions/s is per core (the run is single-threaded).
func BenchmarkRun(b *testing.B) {
	for _, bc := range []struct{ scenario, policy string }{
		{"steady", "thompson"},
		{"steady", "ucb1"},
		{"tasks", "thompson"},
		{"ratelimit", "thompson"},
	} {
		b.Run(bc.scenario+"/"+bc.policy, func(b *testing.B) {
			sc := load(b, bc.scenario)
			p := newPolicy(b, bc.policy, 1)
			b.ReportAllocs()
			b.ResetTimer()
			res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 1, Requests: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
			_ = res
		})
	}
}
