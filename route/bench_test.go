package route_test

import (
	"context"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// BenchmarkCoreRun is one request through the decision core (rule filter,
// Select, act, reward, Update, profiles) with a trivial actor and no sink.
func BenchmarkCoreRun(b *testing.B) {
	for _, name := range []string{"random", "ucb1", "thompson"} {
		b.Run(name, func(b *testing.B) {
			p, err := policy.NewBuiltinRegistry().NewFromString(name)
			if err != nil {
				b.Fatal(err)
			}
			core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Rules: []route.Rule{route.ContextWindowRule{}}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			req := decision.Request{Features: decision.Features{Task: "code", PromptTokens: 100}}
			act := &scripted{out: okOutcome()}
			var rec decision.Record
			b.ReportAllocs()
			for b.Loop() {
				if err := core.Run(ctx, &req, act, &rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
