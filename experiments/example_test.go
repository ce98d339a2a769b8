package experiments_test

import (
	"context"
	"fmt"

	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/policy"
)

// Thompson sampling against uniform random on the stationary scenario,
// five seeds, paired by seed.
func ExampleRun() {
	spec, err := experiments.ParseSpec([]byte(`
name: example
policies: [random, thompson]
scenarios: [steady]
seeds: {count: 5}
requests: 3000
`), "")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := experiments.Run(context.Background(), spec, experiments.Opts{Registry: policy.NewBuiltinRegistry()})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := experiments.Analyze(res)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range a.Policies {
		s, _ := a.Summary("steady", p, "oracle_ratio")
		fmt.Printf("%-8s reward/oracle %.3f ± %.3f\n", p, s.Mean, s.HalfWidth())
	}
	c, _ := a.Comparison("steady", "thompson", "regret")
	fmt.Printf("thompson − random regret: %.0f [%.0f, %.0f], %s\n", c.Diff.Mean, c.Diff.Lo, c.Diff.Hi, c.Verdict)
	// Output:
	// random   reward/oracle 0.922 ± 0.001
	// thompson reward/oracle 0.983 ± 0.006
	// thompson − random regret: -132 [-145, -118], significantly better
}
