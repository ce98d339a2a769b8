package datasets_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/policy"
)

func Example() {
	// Two prompts, two models: "big" is always right but costs $0.004 a
	// prompt, "small" is right on the first prompt only and costs $0.0001.
	const csv = `sample_id,prompt,eval_name,big,small,big|total_cost,small|total_cost
q1,"What is 2+2?",arith,1.0,1.0,0.004,0.0001
q2,"Prove Fermat's last theorem.",proof,1.0,0.0,0.004,0.0001
`
	var tb datasets.Table
	if err := datasets.ParseRouterBench(strings.NewReader(csv), "example.csv", &tb); err != nil {
		fmt.Println(err)
		return
	}
	res, err := datasets.Evaluate(context.Background(), &tb, policy.NewRandom(policy.RandomOpts{Seed: 1}), datasets.Opts{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("oracle mean reward %.4f\n", res.OracleMeanReward)
	for _, f := range res.Fixed {
		fmt.Printf("always %-5s mean reward %.4f, accuracy %.2f, cost $%.4f\n", f.Model, f.MeanReward, f.MeanScore, f.CostTotal)
	}
	fmt.Println("best fixed:", res.BestFixed)
	// BenchReward: 0.6·score + 0.2/(1+cost/$0.001) + 0.2/(1+1s/2s). On q1
	// "small" earns 0.6+0.1818+0.1333 = 0.9152 and beats "big"'s 0.7733; on
	// q2 "big" wins, so the oracle averages (0.9152+0.7733)/2.
	// Output:
	// oracle mean reward 0.8442
	// always big   mean reward 0.7733, accuracy 1.00, cost $0.0080
	// always small mean reward 0.6152, accuracy 0.50, cost $0.0002
	// best fixed: big
}
