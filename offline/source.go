package offline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
)

// LogSource reads the decision log, feedback joined, as a replay.Source
// (and a neural.RecordSource): one fresh Reader per pass, all sharing one
// decisionlog.Pin (unless Opts.Log.Pin is set), so the evaluator's and the
// trainers' second passes see the same records in the same order even
// while a gateway is still writing the log. The zero value is not usable:
// set Opts.Log.Paths.
type LogSource struct {
	// Opts configure each pass's Reader.
	Opts ReaderOpts
	// SkipBad reports an unreadable, corrupt or newer-schema log file
	// (a *decisionlog.FileError) to Warn on the first pass and goes on
	// without it; false makes it an error.
	SkipBad bool
	// Warn receives the SkipBad warnings; nil discards them.
	Warn io.Writer
	// Progress, when set, is called at the start of each pass with the
	// pass number (from 1) and the rows the first pass read (-1 during the
	// first pass). It returns add, called with counts of rows read (in
	// steps of a few thousand and once at the end), and done, called when
	// the pass ends.
	Progress func(pass int, total int64) (add func(rows int64), done func())

	pass int
	rows int64 // rows of the first pass
	pin  decisionlog.Pin
}

// Passes returns how many times Scan has run.
func (s *LogSource) Passes() int { return s.pass }

// Scan implements replay.Source.
func (s *LogSource) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	s.pass++
	add, done := func(int64) {}, func() {}
	if s.Progress != nil {
		total := int64(-1)
		if s.pass > 1 {
			total = s.rows
		}
		add, done = s.Progress(s.pass, total)
		defer done()
	}
	o := s.Opts
	if o.Log.Pin == nil {
		o.Log.Pin = &s.pin
	}
	r := NewReader(o)
	var n, pending int64
	for rec, err := range r.Records(ctx) {
		if err != nil {
			var fe *decisionlog.FileError
			if errors.As(err, &fe) && s.SkipBad {
				if s.pass == 1 && s.Warn != nil {
					fmt.Fprintf(s.Warn, "warning: skipping log file: %v\n", err)
				}
				continue
			}
			return fmt.Errorf("read logs: %w", err)
		}
		if err := fn(&rec); err != nil {
			return err
		}
		n++
		if pending++; pending == 4096 {
			add(pending)
			pending = 0
		}
	}
	add(pending)
	if s.pass == 1 {
		s.rows = n
	}
	return nil
}
