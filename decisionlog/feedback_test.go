package decisionlog

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFeedbackValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Feedback
		want string
	}{
		{"no id", Feedback{HasReward: true}, "empty request id"},
		{"no value", Feedback{RequestID: "a"}, "neither reward nor quality"},
		{"nan reward", Feedback{RequestID: "a", HasReward: true, Reward: nan()}, "not finite"},
		{"quality above 1", Feedback{RequestID: "a", HasQuality: true, Quality: 1.5}, "outside [0,1]"},
		{"ok", Feedback{RequestID: "a", HasQuality: true, Quality: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

// TestFeedbackRead: the reader yields the feedback events as written, in
// file then row order, duplicates included, without touching decisions;
// a listing problem is reported once across Feedback and Records.
func TestFeedbackRead(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock})
	rec := genRecord(rand.New(rand.NewPCG(5, 5)), 0, time.Minute)
	w.Log(&rec)
	require.NoError(t, w.Close())
	fw, err := NewFeedbackWriter(WriterOpts{Root: root, Full: FullBlock})
	require.NoError(t, err)
	fbs := []Feedback{
		{RequestID: "req-0", Time: testBase.Add(time.Minute), Quality: 0.9, HasQuality: true, Source: "judge"},
		{RequestID: "req-0", Time: testBase.Add(2 * time.Minute), Reward: 0.1, HasReward: true, Source: "user"},
		{RequestID: "nope", Time: testBase, Reward: 1, Quality: 0.5, HasReward: true, HasQuality: true},
	}
	for i := range fbs {
		require.NoError(t, fw.Log(&fbs[i]))
	}
	require.NoError(t, fw.Close())

	missing := root + "/missing"
	r := NewReader(ReaderOpts{Paths: []string{root, missing}})
	var got []Feedback
	var errs []error
	for f, err := range r.Feedback(t.Context()) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, f)
	}
	assert.Equal(t, fbs, got)
	require.Len(t, errs, 1, "the missing path")
	assert.ErrorContains(t, errs[0], "missing")
	var recs []decision.Record
	for rec, err := range r.Records(t.Context()) {
		require.NoError(t, err, "the listing error was already reported by Feedback")
		recs = append(recs, rec)
	}
	require.Len(t, recs, 1)
	assert.Equal(t, expectRead(rec, ""), recs[0], "decisions read as logged: storage joins nothing")
}
