package main

import (
	"fmt"
	"os"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"github.com/spf13/pflag"
)

// addLogFlags registers the flags every command that reads decision logs
// shares: --logs, --from, --to, --feedback and --skip-bad-files.
func addLogFlags(f *pflag.FlagSet, logs *[]string, from, to *string, feedback, skipBad *bool, feedbackHelp string) {
	f.StringSliceVar(logs, "logs", nil, "decision log root, directory or file (repeatable, comma-separated)")
	f.StringVar(from, "from", "", "only decisions at or after this time (RFC 3339)")
	f.StringVar(to, "to", "", "only decisions before this time (RFC 3339)")
	f.BoolVar(feedback, "feedback", true, feedbackHelp)
	f.BoolVar(skipBad, "skip-bad-files", false, "report unreadable or newer-schema log files and go on without them")
}

// checkLogPaths rejects an empty or missing --logs.
func checkLogPaths(logs []string) error {
	if len(logs) == 0 {
		return fmt.Errorf("--logs: no log directory given")
	}
	for _, p := range logs {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("--logs %q: %w", p, err)
		}
	}
	return nil
}

// logReaderOpts parses --from and --to into reader options over logs.
func logReaderOpts(logs []string, from, to string, feedback bool) (decisionlog.ReaderOpts, error) {
	ropts := decisionlog.ReaderOpts{Paths: logs, Feedback: feedback}
	var err error
	if ropts.From, err = parseTimeFlag("from", from); err != nil {
		return ropts, err
	}
	if ropts.To, err = parseTimeFlag("to", to); err != nil {
		return ropts, err
	}
	return ropts, nil
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: not an RFC 3339 time (2026-01-05T00:00:00Z): %w", name, v, err)
	}
	return t, nil
}
