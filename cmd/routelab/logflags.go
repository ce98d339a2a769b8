package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/logship"
	"github.com/routelab/routelab/offline"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
)

// addLogFlags registers the flags every command that reads decision logs
// shares: --logs, --from, --to, --feedback and --skip-bad-files.
func addLogFlags(f *pflag.FlagSet, logs *[]string, from, to *string, feedback, skipBad *bool, feedbackHelp string) {
	f.StringSliceVar(logs, "logs", nil, "decision log root, directory or file, or a bucket URL of shipped logs (s3://, gs://, azblob://, file://) (repeatable, comma-separated)")
	f.StringVar(from, "from", "", "only decisions at or after this time (RFC 3339)")
	f.StringVar(to, "to", "", "only decisions before this time (RFC 3339)")
	f.BoolVar(feedback, "feedback", true, feedbackHelp)
	f.BoolVar(skipBad, "skip-bad-files", false, "report unreadable or newer-schema log files and go on without them")
}

// checkLogPaths rejects an empty or missing --logs (bucket URLs are
// checked when logReaderOpts fetches them).
func checkLogPaths(logs []string) error {
	if len(logs) == 0 {
		return fmt.Errorf("--logs: no log directory given")
	}
	for _, p := range logs {
		if logship.IsURL(p) {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("--logs %q: %w", p, err)
		}
	}
	return nil
}

// logReaderOpts parses --from and --to into reader options over logs,
// joining feedback when feedback is set. A bucket URL among logs is
// fetched to a temporary directory first (openLogURLs): call cleanup
// when done reading.
func logReaderOpts(ctx context.Context, logs []string, from, to string, feedback bool, errOut io.Writer) (ropts offline.ReaderOpts, cleanup func(), err error) {
	ropts = offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: logs}, Feedback: feedback}
	if ropts.Log.From, err = parseTimeFlag("from", from); err != nil {
		return ropts, nil, err
	}
	if ropts.Log.To, err = parseTimeFlag("to", to); err != nil {
		return ropts, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ropts.Log.Paths, cleanup, err = openLogURLs(ctx, logs, ropts.Log.From, ropts.Log.To, errOut); err != nil {
		return ropts, nil, err
	}
	return ropts, cleanup, nil
}

// newLogSource is the decision log (feedback joined) as a replay.Source,
// with a progress bar per pass on errOut when it is a terminal and quiet
// is not set. desc labels the passes' bars; a pass past its end is
// labelled "reading logs".
func newLogSource(ropts offline.ReaderOpts, skipBad, quiet bool, errOut io.Writer, desc ...string) *offline.LogSource {
	src := &offline.LogSource{Opts: ropts, SkipBad: skipBad, Warn: errOut}
	if quiet || !isTerminal(errOut) {
		return src
	}
	src.Progress = func(pass int, total int64) (func(int64), func()) {
		d := "reading logs"
		if pass <= len(desc) {
			d = desc[pass-1]
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription(d),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		return func(n int64) { _ = bar.Add64(n) }, func() { _ = bar.Finish() }
	}
	return src
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
