package experiments

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/route"
	"github.com/routelab/routelab/sim"
)

// Event is a timed change of a scenario's world: a provider modifier with a
// from or to offset (an outage, a drift). The report marks events on its
// time-series plots and warns about those a run never reaches.
type Event struct {
	// Label describes it ("balanced: outage (error) starts").
	Label string
	// Seconds is its offset from the scenario's start in virtual seconds.
	Seconds float64
}

// ScenarioEvents returns sc's timed events, in time order (then by label).
func ScenarioEvents(sc *sim.Scenario) []Event {
	// Events of several models at one time with one description merge
	// into one ("4 models: drift from 40m").
	type key struct {
		secs float64
		desc string
	}
	var order []key
	names := map[key][]string{}
	add := func(k key, model string) {
		if _, ok := names[k]; !ok {
			order = append(order, k)
		}
		names[k] = append(names[k], model)
	}
	for _, p := range sc.Providers {
		for _, m := range p.Modifiers {
			what := "change"
			switch {
			case m.Outage != "":
				what = "outage (" + m.Outage + ")"
			case m.Quality != nil || m.ErrorRate != nil:
				what = "drift"
			}
			if len(m.When.Tasks) > 0 {
				what += " on " + strings.Join(m.When.Tasks, ",")
			}
			if f := m.When.From.D(); f > 0 {
				add(key{f.Seconds(), what + " from " + fmtDur(f)}, p.Name)
			}
			if t := m.When.To.D(); t > 0 {
				add(key{t.Seconds(), what + " ends at " + fmtDur(t)}, p.Name)
			}
		}
	}
	evs := make([]Event, 0, len(order))
	for _, k := range order {
		who := names[k]
		label := strings.Join(who, ", ")
		if len(who) > 2 {
			label = fmt.Sprintf("%d models", len(who))
		}
		evs = append(evs, Event{Label: label + ": " + k.desc, Seconds: k.secs})
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].Seconds != evs[j].Seconds {
			return evs[i].Seconds < evs[j].Seconds
		}
		return evs[i].Label < evs[j].Label
	})
	return evs
}

// EventsBeyondHorizon returns, per scenario in spec order, the timed
// events the spec's run length will not reach, estimated from the
// scenario's mean arrival rate (requests / rate seconds). Valid after
// Validate. A run that cuts these events off measures a different
// experiment from the one the scenario describes.
func (s *Spec) EventsBeyondHorizon() map[string][]Event {
	out := map[string][]Event{}
	for i, sc := range s.scenarios {
		n := s.RequestsFor(i)
		if n == 0 {
			n = sc.Requests
		}
		if n == 0 || sc.Traffic.Rate <= 0 {
			continue
		}
		horizon := float64(n) / sc.Traffic.Rate
		for _, e := range ScenarioEvents(sc) {
			if e.Seconds >= horizon {
				out[sc.Name] = append(out[sc.Name], e)
			}
		}
	}
	return out
}

// HorizonWarnings phrases EventsBeyondHorizon for people, one line per
// scenario with cut-off events, in spec order.
func (s *Spec) HorizonWarnings() []string {
	beyond := s.EventsBeyondHorizon()
	var out []string
	for i, sc := range s.scenarios {
		evs := beyond[sc.Name]
		if len(evs) == 0 {
			continue
		}
		n := s.RequestsFor(i)
		if n == 0 {
			n = sc.Requests
		}
		labels := make([]string, len(evs))
		for j, e := range evs {
			labels[j] = e.Label
		}
		out = append(out, fmt.Sprintf("scenario %s: %d requests at %g/s last about %s, so the run never reaches: %s (at least %d requests needed)",
			sc.Name, n, sc.Traffic.Rate, fmtSeconds(float64(n)/sc.Traffic.Rate), strings.Join(labels, "; "),
			int(math.Ceil(evs[len(evs)-1].Seconds*sc.Traffic.Rate*1.1))))
	}
	return out
}

func fmtSeconds(s float64) string {
	if s >= 60 {
		return strconv.FormatFloat(math.Round(s/6)/10, 'f', -1, 64) + " min"
	}
	return strconv.FormatFloat(math.Round(s*10)/10, 'f', -1, 64) + " s"
}

// taskCounter is the sim sink that counts, per request, its task and the
// arm chosen, for the per-task arm shares of scenarios with several tasks
// (sim.Window pools all tasks).
type taskCounter struct {
	tasks   []string
	taskIdx map[string]int
	arms    []string
	armIdx  map[string]int
	// reqs[i] is request i's (task, arm), -1 when not logged.
	reqs [][2]int32
}

func newTaskCounter(tasks []string) *taskCounter {
	tc := &taskCounter{tasks: tasks, taskIdx: map[string]int{}, armIdx: map[string]int{}}
	for i, t := range tasks {
		tc.taskIdx[t] = i
	}
	return tc
}

// Log implements route.Sink.
func (tc *taskCounter) Log(rec *decision.Record) {
	id := strings.TrimPrefix(rec.Request.ID, "r")
	i, err := strconv.Atoi(id)
	if err != nil || i < 0 || rec.Decision.Chosen < 0 || rec.Decision.Chosen >= len(rec.Decision.Candidates) {
		return
	}
	t, ok := tc.taskIdx[rec.Request.Features.Task]
	if !ok {
		return
	}
	arm := rec.Decision.Arm().ID
	a, ok := tc.armIdx[arm]
	if !ok {
		a = len(tc.arms)
		tc.arms = append(tc.arms, arm)
		tc.armIdx[arm] = a
	}
	for len(tc.reqs) <= i {
		tc.reqs = append(tc.reqs, [2]int32{-1, -1})
	}
	tc.reqs[i] = [2]int32{int32(t), int32(a)}
}

// taskCounts are a cell's per-window arm counts by task:
// counts[task][arm][window].
type taskCounts map[string]map[string][]float64

// counts buckets the logged requests into r's windows.
func (tc *taskCounter) counts(r *sim.Result) taskCounts {
	out := taskCounts{}
	for _, t := range tc.tasks {
		out[t] = map[string][]float64{}
		for _, a := range tc.arms {
			out[t][a] = make([]float64, len(r.Windows))
		}
	}
	for w, win := range r.Windows {
		for i := win.First; i < win.First+win.Requests && i < len(tc.reqs); i++ {
			ta := tc.reqs[i]
			if ta[0] < 0 {
				continue
			}
			out[tc.tasks[ta[0]]][tc.arms[ta[1]]][w]++
		}
	}
	return out
}

// sinkOf returns tc as a sink, or nil (no sink) when tc is nil.
func sinkOf(tc *taskCounter) route.Sink {
	if tc == nil {
		return nil
	}
	return tc
}

// fmtDur prints a duration without zero trailing units ("10m", "1h30m").
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// taskDependent reports whether sc has several tasks and some model's
// quality depends on the task: then the best model can differ by task, and
// arm shares pooled over tasks hide what a policy learnt.
func taskDependent(sc *sim.Scenario) bool {
	if len(sc.Tasks()) < 2 {
		return false
	}
	for _, p := range sc.Providers {
		for t := range p.Quality {
			if t != "*" {
				return true
			}
		}
		for _, m := range p.Modifiers {
			if len(m.When.Tasks) > 0 {
				return true
			}
			for t := range m.Quality {
				if t != "*" {
					return true
				}
			}
		}
	}
	return false
}
