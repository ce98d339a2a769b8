package sim_test

import (
	"context"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

func TestStatefulAndFixedArms(t *testing.T) {
	for name, want := range map[string]bool{"ratelimit": true, "diurnal": true, "tasks": false, "steady": false, "outage": false} {
		sc, err := sim.LoadScenario(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.Stateful(); got != want {
			t.Errorf("%s: Stateful() = %v, want %v", name, got, want)
		}
	}
	sc, err := sim.LoadScenario("ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	th, err := policy.NewBuiltinRegistry().NewFromString("thompson=seed:1")
	if err != nil {
		t.Fatal(err)
	}
	o := sim.Opts{Scenario: sc, Seed: 1, Requests: 3000, Policy: th}
	a, err := sim.FixedArmValues(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(sc.Providers) {
		t.Fatalf("%d values for %d arms", len(a), len(sc.Providers))
	}
	for i := 1; i < len(a); i++ {
		if a[i].ExpectedMeanReward > a[i-1].ExpectedMeanReward {
			t.Fatalf("not best first: %+v", a)
		}
	}
	// Policy-independent: the policy in o plays no part.
	o.Policy = nil
	b, err := sim.FixedArmValues(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("fixed-arm values depend on Opts.Policy: %+v vs %+v", a[i], b[i])
		}
	}
}
