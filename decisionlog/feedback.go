package decisionlog

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/routelab/routelab/decision"
)

// fbEntry is one feedback event kept in the index.
type fbEntry struct {
	ts              int64
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

func (x *feedbackIndex) add(r *FeedbackRow) {
	x.rows++
	e := fbEntry{ts: r.Time}
	if r.Reward != nil {
		e.reward, e.hasR = *r.Reward, true
	}
	if r.Quality != nil {
		e.quality, e.hasQ = *r.Quality, true
	}
	if l, ok := x.m[r.RequestID]; ok {
		l.more = append(l.more, e)
		return
	}
	x.m[r.RequestID] = &fbList{first: e}
}

// load reads one feedback file into the index.
func (x *feedbackIndex) load(path string) error {
	f, pf, err := openParquet(path, TableFeedback)
	if err != nil {
		return err
	}
	defer f.Close()
	var rd *parquet.GenericReader[FeedbackRow]
	if err := safely(func() error { rd = parquet.NewGenericReader[FeedbackRow](pf); return nil }); err != nil {
		return &FileError{Path: path, Err: err}
	}
	defer safely(rd.Close)
	buf := make([]FeedbackRow, 256)
	for {
		var n int
		err := safely(func() error {
			var err error
			n, err = rd.Read(buf)
			return err
		})
		for i := range buf[:n] {
			if buf[i].RequestID == "" || (buf[i].Reward == nil && buf[i].Quality == nil) {
				return &FileError{Path: path, Err: fmt.Errorf("feedback row with no request id or no value")}
			}
			x.add(&buf[i])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &FileError{Path: path, Err: fmt.Errorf("read feedback: %w", err)}
		}
	}
}

// pick returns the feedback for a decision at time ts: the latest event
// stamped at or before ts+window (window 0: any), ties going to the one
// read last. ok is false when there is none; late is true when there were
// events but all past the window.
func (l *fbList) pick(ts, window int64) (e fbEntry, ok, late bool) {
	consider := func(c fbEntry) {
		if window > 0 && c.ts > ts+window {
			late = true
			return
		}
		if !ok || c.ts >= e.ts {
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
		e, ok, late := l.pick(toMicros(rec.Time), int64(r.o.JoinWindow/1000))
		if ok {
			if e.hasQ {
				rec.Outcome.Quality, rec.Outcome.QualityKnown = e.quality, true
			}
			if e.hasR {
				rec.Reward = e.reward
			} else {
				rec.Reward = RewardFor(r.o.Reward, &rec.Decision, &rec.Outcome)
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

// RewardFor is the reward route.Core credits to a decision's chosen arm
// (route.Core.RewardFor), for a given reward function: the outcome's
// reward, or a failure's when the chosen arm failed and a fallback
// answered. The zero Reward means decision.DefaultReward().
func RewardFor(rw decision.Reward, d *decision.Decision, o *decision.Outcome) float64 {
	return rw.ForDecision(d, o)
}
