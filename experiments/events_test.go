package experiments

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

func TestScenarioEvents(t *testing.T) {
	sc, err := sim.LoadScenario("outage")
	if err != nil {
		t.Fatal(err)
	}
	evs := ScenarioEvents(sc)
	if len(evs) != 2 || evs[0].Seconds != 600 || evs[1].Seconds != 1200 {
		t.Fatalf("outage events = %+v, want the outage's start at 600 s and end at 1200 s", evs)
	}
	if !strings.Contains(evs[0].Label, "balanced") || !strings.Contains(evs[0].Label, "outage") {
		t.Errorf("label %q names neither the model nor the outage", evs[0].Label)
	}
	steady, err := sim.LoadScenario("steady")
	if err != nil {
		t.Fatal(err)
	}
	if evs := ScenarioEvents(steady); len(evs) != 0 {
		t.Errorf("steady has events %+v", evs)
	}
}

func TestEventsBeyondHorizon(t *testing.T) {
	spec := &Spec{Name: "h", Policies: []PolicyEntry{{Spec: "random"}},
		Scenarios: []ScenarioEntry{{Scenario: "outage", Requests: 3000}, {Scenario: "drift", Requests: 60000}, {Scenario: "steady"}},
		Seeds:     Seeds{Count: 1, Base: 1}}
	if err := spec.Validate(policy.NewBuiltinRegistry()); err != nil {
		t.Fatal(err)
	}
	beyond := spec.EventsBeyondHorizon()
	if got := len(beyond["outage"]); got != 2 {
		t.Errorf("3000 requests at 10/s (300 s) miss the outage at 600-1200 s: %d events beyond, want 2", got)
	}
	if got := len(beyond["drift"]); got != 0 {
		t.Errorf("60000 requests at 20/s reach the drift at 2400 s: %d events beyond", got)
	}
	w := spec.HorizonWarnings()
	if len(w) != 1 || !strings.Contains(w[0], "outage") || !strings.Contains(w[0], "from 10m") {
		t.Errorf("warnings %q: want one naming the outage", w)
	}
}

// TestTaskShares checks the per-task arm shares of a scenario whose best
// model depends on the task: one series per task, shares summing to 1 per
// window, one figure panel per task, and none on a one-best-model world.
func TestTaskShares(t *testing.T) {
	spec := &Spec{Name: "t", Policies: []PolicyEntry{{Spec: "random"}, {Spec: "linucb"}},
		Scenarios: []ScenarioEntry{{Scenario: "tasks"}, {Scenario: "outage"}},
		Seeds:     Seeds{Count: 2, Base: 1}, Requests: 2000}
	res, err := Run(context.Background(), spec, Opts{Registry: policy.NewBuiltinRegistry(), Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Analyze(res)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := a.SeriesOf("tasks", "linucb")
	sc, _ := sim.LoadScenario("tasks")
	if strings.Join(s.Tasks, ",") != strings.Join(sc.Tasks(), ",") {
		t.Fatalf("series tasks %v, want the scenario's %v", s.Tasks, sc.Tasks())
	}
	for _, task := range s.Tasks {
		for w := range s.End {
			sum := 0.0
			for _, arm := range s.Arms {
				sum += s.TaskArmShares[task][arm][w]
			}
			if !math.IsNaN(sum) && math.Abs(sum-1) > 1e-9 {
				t.Fatalf("task %s window %d: shares sum to %g", task, w, sum)
			}
		}
	}
	if o, _ := a.SeriesOf("outage", "linucb"); len(o.Tasks) != 0 {
		t.Errorf("outage (same best model for every task) has per-task series %v", o.Tasks)
	}
	f, err := sharesFigure(a, "tasks", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range s.Tasks {
		if !strings.Contains(string(f.SVG), "task "+task) {
			t.Errorf("shares figure has no panel for task %s", task)
		}
	}
	if strings.Contains(string(f.SVG), "Liberation Sans;") {
		t.Error("SVG names only Liberation Sans: no page font stack")
	}
}
