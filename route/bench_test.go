package route_test

import (
	"context"
	"fmt"
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

// BenchmarkCorePending is one request through the core with the pending
// store full and deferring, as in the gateway under sustained load: every
// Complete keeps its decision and evicts the oldest, whose deferred update
// is credited (an Update of the policy) — the steady state of the store.
func BenchmarkCorePending(b *testing.B) {
	p, err := policy.NewBuiltinRegistry().NewFromString("thompson")
	if err != nil {
		b.Fatal(err)
	}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Rules: []route.Rule{route.ContextWindowRule{}},
		Pending: route.PendingOpts{MaxEntries: 1024, Defer: true}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("req-%020d", i)
	}
	req := decision.Request{Features: decision.Features{Task: "code", PromptTokens: 100, Vector: make([]float64, 10)}}
	out := okOutcome()
	out.QualityKnown = false
	act := &scripted{out: out}
	var rec decision.Record
	for i := range 2048 { // fill the store
		req.ID = ids[i%len(ids)]
		if err := core.Run(ctx, &req, act, &rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.ID = ids[i%len(ids)]
		i++
		if err := core.Run(ctx, &req, act, &rec); err != nil {
			b.Fatal(err)
		}
	}
	if st := core.PendingStats(); st.Evicted == 0 || st.Expired == 0 {
		b.Fatalf("store not in steady state: %+v", st)
	}
}
