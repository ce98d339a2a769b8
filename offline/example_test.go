package offline_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/offline"
)

// Log decisions, record delayed feedback for one of them, and read the
// decisions back with the feedback joined.
func ExampleReader() {
	root, _ := os.MkdirTemp("", "decisionlog-example")
	defer os.RemoveAll(root)
	ctx := context.Background()

	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root})
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	arms := []decision.Arm{{ID: "small"}, {ID: "large"}}
	for i, chosen := range []int{0, 1, 1} {
		rec := decision.Record{
			Time:    t0.Add(time.Duration(i) * time.Second),
			Request: decision.Request{ID: fmt.Sprintf("req-%d", i)},
			Decision: decision.Decision{Policy: "thompson", PolicyVersion: "1", Reason: decision.ReasonPolicy,
				Candidates: arms, Probs: []float64{0.3, 0.7}, Chosen: chosen},
			Outcome: decision.Outcome{Arm: arms[chosen].ID, Latency: 800 * time.Millisecond, Cost: 0.001},
			Reward:  0.5,
		}
		w.Log(&rec) // a route.Core calls this as its Sink
	}
	if err := w.Close(); err != nil {
		panic(err)
	}

	fw, err := decisionlog.NewFeedbackWriter(decisionlog.WriterOpts{Root: root})
	if err != nil {
		panic(err)
	}
	fb := decisionlog.Feedback{RequestID: "req-1", Time: t0.Add(time.Hour), Reward: 0.9, HasReward: true, Source: "user"}
	if err := fw.Log(&fb); err != nil {
		panic(err)
	}
	if err := fw.Close(); err != nil {
		panic(err)
	}

	r := offline.NewReader(offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: []string{root}}, Feedback: true})
	for rec, err := range r.Records(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s p=%.1f reward=%.1f (%s)\n", rec.Request.ID, rec.Decision.Arm().ID, rec.Decision.Prob(), rec.Reward, rec.RewardSource)
	}
	fmt.Printf("%+v\n", r.JoinStats())
	// Output:
	// req-0 small p=0.3 reward=0.5 (immediate)
	// req-1 large p=0.7 reward=0.9 (delayed)
	// req-2 large p=0.7 reward=0.5 (immediate)
	// {FeedbackRows:1 FeedbackIDs:1 Duplicates:0 Applied:1 Late:0 Defaulted:0 Unknown:0 Refused:0}
}
