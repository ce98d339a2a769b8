package decisionlog

import (
	"context"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/routelab/routelab/decision"
)

// ReaderOpts configures NewReader.
type ReaderOpts struct {
	// Paths are log roots, directories or single files. Directories are
	// walked recursively; *.parquet.tmp files, and directories whose name
	// starts with "_" or ".", are skipped. Files named fb-* (or whose
	// metadata says so) are feedback (read by Reader.Feedback), the rest
	// decisions (read by Reader.Records).
	Paths []string
	// From and To keep records with From <= Time < To; zero means
	// unbounded. Whole hour partitions outside the range are not opened.
	From, To time.Time
	// BatchRows is how many rows are decoded at a time (default 512).
	BatchRows int
	// IncludeOpen also reads the files still being written, from their
	// WAL segments (name.parquet.wal: the complete, checksummed records;
	// a record being appended is ignored): rows become visible within
	// about a FlushInterval of being logged, without stopping the writer.
	// Feedback segments are not read. The CLI turns it on by default.
	IncludeOpen bool
	// Reuse makes Records yield records whose slices (candidates, probs,
	// attempts, tags, vector) are reused by the next iteration: fewer
	// allocations for callers that do not keep records.
	Reuse bool
	// Pin, optional, makes the Readers that share it see the same rows
	// of a log that is still being written (see Pin).
	Pin *Pin
}

// Pin holds what the first of several Readers saw, so that later passes
// over a live log (IncludeOpen) read the same rows in the same order: the
// first Reader that lists files records the decision and feedback files
// it found and, when its Records runs to the end, how many rows it read of
// each decision file; later Readers sharing the Pin read only those files
// and at most those rows of each. A file finished between passes is read
// from its Parquet file in place of its write-ahead segment (the same
// rows, in the same order). Feedback of open files is never read, so the
// pinned feedback files are complete. Use it from one goroutine.
type Pin struct {
	listed    bool
	decs, fbs []string
	counted   bool
	rows      map[string]int64
}

func (o *ReaderOpts) validate() error {
	switch {
	case len(o.Paths) == 0:
		return fmt.Errorf("reader paths: none given")
	case !o.From.IsZero() && !o.To.IsZero() && !o.To.After(o.From):
		return fmt.Errorf("reader time range: to %v is not after from %v", o.To, o.From)
	}
	return nil
}

// FileError is a problem with one file: unreadable, corrupt, foreign or of
// a newer schema. Reading goes on with the next file.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("decisionlog: %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Reader streams decisions out of log files. Use Records once per Reader.
type Reader struct {
	o ReaderOpts
	// The file listing, done once by whichever of Records and Feedback
	// runs first; that one also yields the listing's errors.
	listed    bool
	decs, fbs []string
}

// NewReader returns a reader over o.Paths. Nothing is opened until
// Records runs.
func NewReader(o ReaderOpts) *Reader {
	if o.BatchRows <= 0 {
		o.BatchRows = 512
	}
	return &Reader{o: o}
}

// files lists the decision and feedback files under Paths. The first
// call returns the option and listing errors; later calls return none.
func (r *Reader) files() (decs, fbs []string, errs []error) {
	if r.listed {
		return r.decs, r.fbs, nil
	}
	r.listed = true
	if err := r.o.validate(); err != nil {
		return nil, nil, []error{err}
	}
	if pin := r.o.Pin; pin != nil && pin.listed {
		r.decs, r.fbs = pin.decs, pin.fbs
		return r.decs, r.fbs, nil
	}
	r.decs, r.fbs, errs = listFiles(r.o.Paths, r.o.IncludeOpen)
	if pin := r.o.Pin; pin != nil {
		pin.listed, pin.decs, pin.fbs = true, slices.Clone(r.decs), slices.Clone(r.fbs)
	}
	return r.decs, r.fbs, errs
}

// Records yields every decision in the files, in file order (partitions
// in time order), as a fresh decision.Record the caller may keep (unless
// ReaderOpts.Reuse). A problem with one file — or one undecodable row —
// is yielded as a *FileError with a zero Record, and reading goes on; a
// cancelled ctx ends the sequence with ctx.Err().
func (r *Reader) Records(ctx context.Context) iter.Seq2[decision.Record, error] {
	return func(yield func(decision.Record, error) bool) {
		for row, err := range r.rows(ctx) {
			if err != nil {
				if !yield(decision.Record{}, err) {
					return
				}
				continue
			}
			if row.err != nil {
				if !yield(decision.Record{}, &FileError{Path: row.path, Err: row.err}) {
					return
				}
				continue
			}
			if !yield(row.rec, nil) {
				return
			}
		}
	}
}

type rowOut struct {
	rec  decision.Record
	err  error
	path string
}

// rows does the work of Records.
func (r *Reader) rows(ctx context.Context) iter.Seq2[*rowOut, error] {
	return func(yield func(*rowOut, error) bool) {
		decs, _, errs := r.files()
		for _, err := range errs {
			if !yield(nil, err) {
				return
			}
		}
		var from, to int64 = -1 << 63, 1<<63 - 1
		if !r.o.From.IsZero() {
			from = toMicros(r.o.From)
		}
		if !r.o.To.IsZero() {
			to = toMicros(r.o.To)
		}
		buf := make([]Row, r.o.BatchRows)
		intern := map[string]string{}
		out := &rowOut{}
		// With a Pin: the first full pass counts each file's rows, later
		// passes stop each file at that count.
		pin := r.o.Pin
		limited := pin != nil && pin.counted
		var seen map[string]int64
		if pin != nil && !limited {
			seen = map[string]int64{}
		}
		for _, path := range decs {
			if !partitionOverlaps(path, from, to) {
				continue
			}
			n, limit, full := int64(0), int64(-1), false
			if limited {
				limit = pin.rows[path]
			}
			ok := scanAny(ctx, path, buf, intern, func(rows []Row) bool {
				for i := range rows {
					if n == limit {
						full = true
						return false
					}
					n++
					row := &rows[i]
					if row.Time < from || row.Time >= to {
						continue
					}
					if r.o.Reuse {
						out.path, out.err = path, nil
					} else {
						*out = rowOut{path: path}
					}
					out.err = row.recordInto(&out.rec)
					if !yield(out, nil) {
						return false
					}
				}
				return true
			}, func(err error) bool { return yield(nil, err) })
			if seen != nil {
				seen[path] = n
			}
			if !ok && !full {
				return
			}
		}
		if seen != nil {
			pin.counted, pin.rows = true, seen
		}
	}
}

// scanFile reads path in batches of len(buf) rows and calls fn with each
// batch. A file-level problem goes to onErr. It returns false when fn or
// onErr asked to stop. parquet-go may panic on a damaged file: the panic
// becomes a *FileError.
func scanFile(ctx context.Context, path string, buf []Row, intern map[string]string, fn func([]Row) bool, onErr func(error) bool) bool {
	f, pf, err := openParquet(path, TableDecisions)
	if err != nil {
		return onErr(err)
	}
	defer f.Close()
	var ctxErr error
	more, err := readRowGroups(pf, buf, intern, func(rows []Row) bool {
		if ctxErr = ctx.Err(); ctxErr != nil {
			return false
		}
		return fn(rows)
	})
	if ctxErr != nil {
		onErr(ctxErr)
		return false
	}
	if err != nil {
		return onErr(&FileError{Path: path, Err: err})
	}
	return more
}

// safely runs fn, turning a panic into an error.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt file (parquet panic: %v)", p)
		}
	}()
	return fn()
}

// openParquet opens path and checks its footer: table kind (when
// recorded) and schema version. Errors are *FileError.
func openParquet(path, table string) (*os.File, *parquet.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, &FileError{Path: path, Err: err}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, &FileError{Path: path, Err: err}
	}
	if err := checkFooterBytes(f, st.Size()); err != nil {
		f.Close()
		return nil, nil, &FileError{Path: path, Err: fmt.Errorf("open parquet: %w", err)}
	}
	var pf *parquet.File
	err = safely(func() error {
		var err error
		pf, err = parquet.OpenFile(f, st.Size(), parquet.SkipBloomFilters(true))
		return err
	})
	if err != nil {
		f.Close()
		return nil, nil, &FileError{Path: path, Err: fmt.Errorf("open parquet: %w", err)}
	}
	if err := checkFooter(pf, table); err != nil {
		f.Close()
		return nil, nil, &FileError{Path: path, Err: err}
	}
	if err := checkPages(pf, f, st.Size()); err != nil {
		f.Close()
		return nil, nil, &FileError{Path: path, Err: fmt.Errorf("damaged: %w", err)}
	}
	return f, pf, nil
}

func checkFooter(pf *parquet.File, table string) error {
	if t, ok := pf.Lookup(MetaTable); ok && t != table {
		return fmt.Errorf("table %q, want %q", t, table)
	}
	v, ok := pf.Lookup(MetaSchemaVersion)
	if !ok {
		return fmt.Errorf("no %s metadata: not a routelab log file", MetaSchemaVersion)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("schema version %q is not a positive integer", v)
	}
	if n > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this reader (%d)", n, SchemaVersion)
	}
	return nil
}

// listFiles walks paths and returns decision and feedback files, each
// sorted by path (Hive partitions sort by time). With open, decision WAL
// segments of files being written (*.parquet.wal) are listed too, unless
// their file is already committed.
func listFiles(paths []string, open bool) (decs, fbs []string, errs []error) {
	seen := map[string]bool{}
	add := func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		if isFeedbackFile(path) {
			fbs = append(fbs, path)
		} else {
			decs = append(decs, path)
		}
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			errs = append(errs, &FileError{Path: root, Err: err})
			continue
		}
		if !st.IsDir() {
			add(filepath.Clean(root))
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, &FileError{Path: path, Err: err})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			name := d.Name()
			if d.IsDir() {
				if path != root && (strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
					return fs.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(name, ".parquet") && !strings.HasPrefix(name, ".") {
				add(path)
			}
			if open && strings.HasSuffix(name, ".parquet"+walSuffix) && !strings.HasPrefix(name, ".") && !isFeedbackFile(path) {
				add(path)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, &FileError{Path: root, Err: err})
		}
	}
	if open {
		// A segment outlives its file's rename by a moment: read the file.
		decs = slices.DeleteFunc(decs, func(p string) bool {
			final, ok := strings.CutSuffix(p, walSuffix)
			return ok && seen[final]
		})
	}
	slices.Sort(decs)
	slices.Sort(fbs)
	return decs, fbs, errs
}

func isFeedbackFile(path string) bool {
	if strings.HasPrefix(filepath.Base(path), "fb-") {
		return true
	}
	return filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(path)))) == TableFeedback
}

// partitionOverlaps reports whether the file's dt=/hour= partition (when
// its path has one) can hold times in [from, to).
func partitionOverlaps(path string, from, to int64) bool {
	hourDir := filepath.Base(filepath.Dir(path))
	dtDir := filepath.Base(filepath.Dir(filepath.Dir(path)))
	hs, ok1 := strings.CutPrefix(hourDir, "hour=")
	ds, ok2 := strings.CutPrefix(dtDir, "dt=")
	if !ok1 || !ok2 {
		return true
	}
	t, err := time.Parse("2006-01-02 15", ds+" "+hs)
	if err != nil {
		return true
	}
	start := toMicros(t)
	end := start + int64(time.Hour/time.Microsecond)
	return start < to && end > from
}
