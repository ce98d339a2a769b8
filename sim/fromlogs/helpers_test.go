package fromlogs_test

import (
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/routelab/routelab/replay"
)

// collect keeps copies of a simulation's records (internal/synthlog).
type collect = synthlog.Collector

func arms(ids ...string) []decision.Arm { return synthlog.MakeArms(ids...) }

func rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return synthlog.Rec(id, probs, chosen, reward)
}

// tinyLog: two arms a, b; two rows logged uniformly, two with μ = (¼, ¾).
func tinyLog() replay.Records { return synthlog.TinyLog() }
