package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// Serve a recorded trace — here three requests written by hand — with the
// tasks scenario's providers instead of its generated traffic.
func ExampleRun_trace() {
	sc, err := sim.LoadScenario("tasks")
	if err != nil {
		panic(err)
	}
	trace := sim.TraceSlice{
		{At: 0, Features: decision.Features{Task: "code", PromptTokens: 800}, CompletionTokens: 300},
		{At: 2 * time.Second, Features: decision.Features{Task: "math", Tenant: "acme"}}, // lengths drawn
		{At: 90 * time.Second, Features: decision.Features{Task: "code", PromptTokens: 100}, CompletionTokens: 50},
	}
	res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: policy.NewRandom(policy.RandomOpts{Seed: 1}), Seed: 1, Trace: trace})
	if err != nil {
		panic(err)
	}
	fmt.Println("requests:", res.Requests)
	fmt.Println("code:", res.Tasks["code"].Requests, "math:", res.Tasks["math"].Requests)
	fmt.Println("finished after 90s:", res.VirtualSeconds > 90)
	// Output:
	// requests: 3
	// code: 2 math: 1
	// finished after 90s: true
}
