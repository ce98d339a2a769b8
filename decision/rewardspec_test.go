package decision_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
)

func TestRewardSpec(t *testing.T) {
	var s decision.RewardSpec
	if err := json.Unmarshal([]byte(`{"quality":0.5,"cost_ref":0.01,"latency_ref":"3s"}`), &s); err != nil {
		t.Fatal(err)
	}
	r, err := s.Reward()
	if err != nil {
		t.Fatal(err)
	}
	want := decision.DefaultReward()
	want.Quality, want.CostRef, want.LatencyRef = 0.5, 0.01, 3*time.Second
	if r != want {
		t.Fatalf("Reward() = %+v, want %+v", r, want)
	}
	var nilSpec *decision.RewardSpec
	if r, err := nilSpec.Reward(); err != nil || r != decision.DefaultReward() {
		t.Fatalf("nil spec: %+v, %v", r, err)
	}
	out, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(out), `"latency_ref":"3s"`) {
		t.Fatalf("marshal: %s, %v", out, err)
	}
	for _, c := range []struct{ in, field string }{
		{`{"cost_ref":-1}`, "cost_ref"},
		{`{"unknown_quality":2}`, "unknown_quality"},
		{`{"failure":-1}`, "failure"},
		{`{"latency_ref":"-1s"}`, "latency_ref"},
		{`{"lambda":-1}`, "lambda"},
	} {
		var s decision.RewardSpec
		if err := json.Unmarshal([]byte(c.in), &s); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want one naming %s", c.in, err, c.field)
		}
	}
	var d decision.Duration
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("UnmarshalText(soon) succeeded")
	}
}

// TestRewardLambda: the willingness-to-pay term makes quality − λ·cost.
func TestRewardLambda(t *testing.T) {
	one := 1.0
	zero := 0.0
	lam := 20.0
	s := decision.RewardSpec{Quality: &one, Cost: &zero, Latency: &zero, Lambda: &lam}
	r, err := s.Reward()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ q, cost, want float64 }{
		{0.9, 0.005, 0.8},
		{1, 0, 1},
		{0.1, 0.01, 0}, // clamped
	} {
		got := r.Of(&decision.Outcome{Quality: c.q, QualityKnown: true, Cost: c.cost})
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quality %v cost %v: reward %v, want %v", c.q, c.cost, got, c.want)
		}
	}
}
