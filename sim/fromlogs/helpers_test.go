package fromlogs_test

import (
	"strings"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
)

// collect is a route.Sink that keeps copies of the records (the core reuses
// their slices). Candidate sets are interned: the tasks scenario offers the
// same five arms on every request.
type collect struct {
	recs  replay.Records
	cands map[string][]decision.Arm
}

func (c *collect) Log(rec *decision.Record) {
	var key strings.Builder
	for _, a := range rec.Decision.Candidates {
		key.WriteString(a.ID)
		key.WriteByte(0)
	}
	cs, ok := c.cands[key.String()]
	if !ok {
		cs = make([]decision.Arm, len(rec.Decision.Candidates))
		for i, a := range rec.Decision.Candidates {
			cs[i] = decision.Arm{ID: a.ID} // what the decision log keeps too
		}
		c.cands[key.String()] = cs
	}
	r := *rec
	r.Decision.Candidates = cs
	r.Decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	r.Outcome.Attempts = nil
	c.recs = append(c.recs, r)
}

func arms(ids ...string) []decision.Arm {
	out := make([]decision.Arm, len(ids))
	for i, id := range ids {
		out[i] = decision.Arm{ID: id}
	}
	return out
}

func rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return decision.Record{
		Request:  decision.Request{ID: id},
		Decision: decision.Decision{Candidates: arms("a", "b"), Probs: probs, Chosen: chosen},
		Reward:   reward,
	}
}

// tinyLog: two arms a, b; two rows logged uniformly, two with μ = (¼, ¾).
func tinyLog() replay.Records {
	return replay.Records{
		rec("r1", []float64{0.5, 0.5}, 0, 1),
		rec("r2", []float64{0.5, 0.5}, 1, 0),
		rec("r3", []float64{0.25, 0.75}, 0, 0.5),
		rec("r4", []float64{0.25, 0.75}, 1, 1),
	}
}
