package sim_test

import (
	"context"
	"fmt"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// Route the steady scenario's traffic with UCB1 and compare it with the
// oracle, which knows every model's expected reward.
func ExampleRun() {
	sc, err := sim.LoadScenario("steady")
	if err != nil {
		panic(err)
	}
	ucb, err := policy.NewUCB1(policy.UCB1Opts{C: 1})
	if err != nil {
		panic(err)
	}
	res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: ucb, Seed: 1, Requests: 20_000})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s on %s, %d requests\n", res.Policy, res.Scenario, res.Requests)
	fmt.Printf("oracle routes %.0f%% to balanced, mean reward %.3f\n", 100*res.OracleArmShares["balanced"], res.OracleMeanReward)
	fmt.Printf("ucb1 routes most to balanced: %v\n", res.ArmShares["balanced"] > 0.5)
	fmt.Printf("ucb1 within 5%% of the oracle: %v\n", res.ExpectedMeanReward > 0.95*res.OracleMeanReward)
	// Output:
	// ucb1 on steady, 20000 requests
	// oracle routes 100% to balanced, mean reward 0.725
	// ucb1 routes most to balanced: true
	// ucb1 within 5% of the oracle: true
}

// Scenarios are YAML; validation names the offending field.
func ExampleParseScenario() {
	src := []byte(`
name: two-models
traffic:
  rate: 5
  tasks: {chat: 2, code: 1}
providers:
  - name: small
    price_in: 0.0002
    price_out: 0.0006
    latency: {median: 300ms, sigma: 0.4, per_output_token: 5ms}
    quality: {chat: 0.8, code: 0.5}
  - name: large
    price_in: 0.003
    price_out: 0.012
    latency: {median: 700ms, sigma: 0.5, per_output_token: 12ms}
    error_rate: 1.5
    quality: {"*": 0.9}
`)
	_, err := sim.ParseScenario("mine", src)
	fmt.Println(err)
	// Output:
	// scenario "two-models": providers[1].error_rate: 1.5 outside [0,1]
}
