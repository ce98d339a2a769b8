package offline

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
)

// ReaderOpts configures NewReader.
type ReaderOpts struct {
	// Log says which log files to read and the time range; see
	// decisionlog.ReaderOpts.
	Log decisionlog.ReaderOpts
	// Feedback joins the feedback found under Log.Paths into the records
	// (see the package documentation for the rule). false reads the
	// decisions as logged.
	Feedback bool
	// JoinWindow ignores feedback stamped later than the decision's time
	// plus the window ("late"); 0 means no limit.
	JoinWindow time.Duration
	// Reward recomputes the reward when feedback carries a quality but no
	// reward (decision.Reward.ForDecision, as route.Core credits it); the
	// zero value means decision.DefaultReward().
	Reward decision.Reward
	// DefaultReward, when set and Feedback is on, replaces the reward of
	// records whose quality was unknown and that got no feedback; their
	// RewardSource becomes decision.RewardDefault.
	DefaultReward *float64
}

func (o *ReaderOpts) validate() error {
	switch {
	case o.JoinWindow < 0:
		return fmt.Errorf("reader join_window: %v must be >= 0", o.JoinWindow)
	case o.DefaultReward != nil && (math.IsNaN(*o.DefaultReward) || math.IsInf(*o.DefaultReward, 0)):
		return fmt.Errorf("reader default_reward: %v is not finite", *o.DefaultReward)
	}
	return o.Reward.Validate()
}

// JoinStats count what the feedback join did; see Reader.JoinStats.
type JoinStats struct {
	// FeedbackRows read, and the distinct request ids among them.
	FeedbackRows, FeedbackIDs int64
	// Duplicates is FeedbackRows minus FeedbackIDs: extra events for an id.
	Duplicates int64
	// Applied records got their reward from feedback.
	Applied int64
	// Late records had feedback, all of it past the join window.
	Late int64
	// Defaulted records got ReaderOpts.DefaultReward.
	Defaulted int64
	// Unknown feedback ids matched no record read.
	Unknown int64
	// Refused rows (decision.StatusRefused: requests refused before any
	// attempt, with no decision) were read and skipped.
	Refused int64
}

// Reader streams logged decisions with their delayed feedback joined in.
// Use Records once per Reader.
type Reader struct {
	o     ReaderOpts
	stats JoinStats
}

// NewReader returns a reader over o.Log.Paths. Nothing is opened until
// Records runs.
func NewReader(o ReaderOpts) *Reader { return &Reader{o: o} }

// JoinStats returns the feedback join counters; complete once Records has
// run to the end.
func (r *Reader) JoinStats() JoinStats { return r.stats }

// Records yields every logged decision as decisionlog.Reader.Records does
// (same order, same errors, same reuse rule), after applying the feedback
// join when ReaderOpts.Feedback is set. Rows of refused requests
// (decision.StatusRefused) carry no decision to learn or evaluate from:
// they are skipped and counted in JoinStats.Refused.
func (r *Reader) Records(ctx context.Context) iter.Seq2[decision.Record, error] {
	return func(yield func(decision.Record, error) bool) {
		r.stats = JoinStats{}
		if err := r.o.validate(); err != nil {
			yield(decision.Record{}, err)
			return
		}
		lr := decisionlog.NewReader(r.o.Log)
		var idx *feedbackIndex
		if r.o.Feedback {
			idx = newFeedbackIndex()
			for f, err := range lr.Feedback(ctx) {
				if err != nil {
					if !yield(decision.Record{}, err) || ctx.Err() != nil {
						return
					}
					continue
				}
				idx.add(&f)
			}
			r.stats.FeedbackRows = idx.rows
			r.stats.FeedbackIDs = int64(len(idx.m))
			r.stats.Duplicates = idx.rows - int64(len(idx.m))
		}
		for rec, err := range lr.Records(ctx) {
			if err == nil && rec.Outcome.Status == decision.StatusRefused {
				r.stats.Refused++
				continue
			}
			if err == nil && idx != nil {
				r.join(idx, &rec)
			}
			if !yield(rec, err) {
				return
			}
		}
		if idx != nil {
			for _, e := range idx.m {
				if !e.matched {
					r.stats.Unknown++
				}
			}
		}
	}
}

// fbEntry is one feedback event kept in the index.
type fbEntry struct {
	ts              time.Time
	reward, quality float64
	hasR, hasQ      bool
}

// fbList holds an id's events; most ids have one, kept inline.
type fbList struct {
	first   fbEntry
	more    []fbEntry
	matched bool
}

// feedbackIndex maps request id → feedback events. It is loaded whole
// before decisions stream past it: feedback is one small row per rated
// request, so memory is bounded by the number of rated requests, not by
// the number of decisions.
type feedbackIndex struct {
	m    map[string]*fbList
	rows int64
}

func newFeedbackIndex() *feedbackIndex { return &feedbackIndex{m: map[string]*fbList{}} }

func (x *feedbackIndex) add(f *decisionlog.Feedback) {
	x.rows++
	e := fbEntry{ts: f.Time, reward: f.Reward, hasR: f.HasReward, quality: f.Quality, hasQ: f.HasQuality}
	if l, ok := x.m[f.RequestID]; ok {
		l.more = append(l.more, e)
		return
	}
	x.m[f.RequestID] = &fbList{first: e}
}

// pick returns the feedback for a decision at time ts: the latest event
// stamped at or before ts+window (window 0: any), ties going to the one
// read last. ok is false when there is none; late is true when there were
// events but all past the window.
func (l *fbList) pick(ts time.Time, window time.Duration) (e fbEntry, ok, late bool) {
	consider := func(c fbEntry) {
		if window > 0 && c.ts.After(ts.Add(window)) {
			late = true
			return
		}
		if !ok || !c.ts.Before(e.ts) {
			e, ok = c, true
		}
	}
	consider(l.first)
	for _, c := range l.more {
		consider(c)
	}
	if ok {
		late = false
	}
	return e, ok, late
}

// join applies the index to rec (see the package documentation).
func (r *Reader) join(idx *feedbackIndex, rec *decision.Record) {
	l := idx.m[rec.Request.ID]
	if l != nil {
		l.matched = true
		e, ok, late := l.pick(rec.Time, r.o.JoinWindow)
		if ok {
			if e.hasQ {
				rec.Outcome.Quality, rec.Outcome.QualityKnown = e.quality, true
			}
			if e.hasR {
				rec.Reward = e.reward
			} else {
				rec.Reward = r.o.Reward.ForDecision(&rec.Decision, &rec.Outcome)
			}
			rec.RewardSource = decision.RewardDelayed
			r.stats.Applied++
			return
		}
		if late {
			r.stats.Late++
		}
	}
	if r.o.DefaultReward != nil && !rec.Outcome.QualityKnown {
		rec.Reward = *r.o.DefaultReward
		rec.RewardSource = decision.RewardDefault
		r.stats.Defaulted++
	}
}
