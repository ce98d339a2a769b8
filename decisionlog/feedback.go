package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/parquet-go/parquet-go"
)

// Feedback yields every feedback event in the feedback files under
// ReaderOpts.Paths, in file order (partitions in time order) and row order
// within a file. From and To do not apply: feedback for a decision may
// arrive after the range. A problem with one file is yielded as a
// *FileError and reading goes on; a cancelled ctx ends the sequence with
// ctx.Err(). Invalid options and unreadable paths are yielded by whichever
// of Feedback and Records runs first on this Reader, so a caller reading
// both sees each once. Joining the events into decisions (and recomputing
// rewards) is the job of package offline.
func (r *Reader) Feedback(ctx context.Context) iter.Seq2[Feedback, error] {
	return func(yield func(Feedback, error) bool) {
		_, fbs, errs := r.files()
		for _, err := range errs {
			if !yield(Feedback{}, err) {
				return
			}
		}
		for _, path := range fbs {
			if err := ctx.Err(); err != nil {
				yield(Feedback{}, err)
				return
			}
			if !readFeedbackFile(path, yield) {
				return
			}
		}
	}
}

// readFeedbackFile yields the events of one feedback file; it returns
// false when yield asked to stop.
func readFeedbackFile(path string, yield func(Feedback, error) bool) bool {
	f, pf, err := openParquet(path, TableFeedback)
	if err != nil {
		return yield(Feedback{}, err)
	}
	defer f.Close()
	var rd *parquet.GenericReader[FeedbackRow]
	if err := safely(func() error { rd = parquet.NewGenericReader[FeedbackRow](pf); return nil }); err != nil {
		return yield(Feedback{}, &FileError{Path: path, Err: err})
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
				return yield(Feedback{}, &FileError{Path: path, Err: fmt.Errorf("feedback row with no request id or no value")})
			}
			if !yield(buf[i].Feedback(), nil) {
				return false
			}
		}
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return yield(Feedback{}, &FileError{Path: path, Err: fmt.Errorf("read feedback: %w", err)})
		}
	}
}
