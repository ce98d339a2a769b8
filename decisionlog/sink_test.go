package decisionlog_test

import (
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/route"
)

// The writer is the decision core's log sink; the assertion lives in a test
// so that decisionlog itself imports only the value types.
var _ route.Sink = (*decisionlog.Writer)(nil)
