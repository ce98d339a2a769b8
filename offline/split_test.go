package offline_test

import (
	"context"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/replay"
)

func TestTimeSplit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs replay.Records
	for _, s := range []int{5, 1, 3, 3, 2, 4} { // out of order, one tie
		recs = append(recs, decision.Record{Time: t0.Add(time.Duration(s) * time.Second), Request: decision.Request{ID: string(rune('a' + s))}})
	}
	train, test, cut, err := offline.TimeSplit(context.Background(), recs, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted times 1 2 3 3 4 5: the cut at 3 rows falls inside the tie
	// at 3 s, which stays on the training side.
	if len(train) != 4 || len(test) != 2 || !cut.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("split %d/%d at %v, want 4/2 at +4s", len(train), len(test), cut.Sub(t0))
	}
	for _, r := range train {
		if !r.Time.Before(cut) {
			t.Fatalf("training row at %v not before the cut", r.Time)
		}
	}
	for _, r := range test {
		if r.Time.Before(cut) {
			t.Fatalf("test row at %v before the cut", r.Time)
		}
	}
	for _, bad := range []float64{0, 1, -0.5, 2} {
		if _, _, _, err := offline.TimeSplit(context.Background(), recs, bad); err == nil {
			t.Errorf("fraction %v accepted", bad)
		}
	}
	if _, _, _, err := offline.TimeSplit(context.Background(), recs[:1], 0.5); err == nil {
		t.Error("one row split into two non-empty parts")
	}
}
