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
	ucb, err := policy.NewUCB1(1)
	if err != nil {
		panic(err)
	}
	res, err := sim.Run(context.Background(), sim.Options{Scenario: sc, Policy: ucb, Seed: 1, Requests: 20_000})
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
