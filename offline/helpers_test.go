package offline_test

import (
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/routelab/routelab/replay"
)

// The synthetic world is package internal/synthlog's; these names keep
// the tests short.
var (
	synthTasks = synthlog.Tasks
	synthArms  = synthlog.Arms
	synthMean  = synthlog.Mean
)

type (
	taskPolicy  = synthlog.TaskPolicy
	synthSource = synthlog.Source
)

func taskIndex(task string) int           { return synthlog.TaskIndex(task) }
func loggerTable() [3][4]float64          { return synthlog.LoggerTable() }
func oracleTable() [3][4]float64          { return synthlog.OracleTable() }
func softTable() [3][4]float64            { return synthlog.SoftTable() }
func trueValue(tab [3][4]float64) float64 { return synthlog.TrueValue(tab) }

var synthTruth = map[string]float64{"oracle": trueValue(oracleTable())}

func tinyLog() replay.Records { return synthlog.TinyLog() }

func arms(ids ...string) []decision.Arm { return synthlog.MakeArms(ids...) }

func rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return synthlog.Rec(id, probs, chosen, reward)
}
