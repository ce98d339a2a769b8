package decisionlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/routelab/routelab/decision"
)

// Summary describes a log directory; see Inspect.
type Summary struct {
	Paths []string `json:"paths"`
	// Files and Rows of the decisions table (readable files only).
	Files int   `json:"files"`
	Rows  int64 `json:"rows"`
	// First and Last are the earliest and latest decision times (zero when
	// there are no rows).
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Policies counts rows per serving policy (name@version); Arms per
	// chosen arm.
	Policies map[string]int64 `json:"policies"`
	Arms     map[string]int64 `json:"arms"`
	// SchemaVersions counts rows per schema version.
	SchemaVersions map[int32]int64 `json:"schema_versions"`
	// Refused counts the rows of requests refused before any attempt
	// (status "refused") by their refusal code (the reason column); they
	// are in Rows but not in Policies or Arms.
	Refused       map[string]int64 `json:"refused"`
	FeedbackFiles int              `json:"feedback_files"`
	FeedbackRows  int64            `json:"feedback_rows"`
	// TmpFiles are unfinished files: being written, or left by a crash.
	TmpFiles int `json:"tmp_files"`
	// OpenSegments are the WAL segments of files being written that were
	// read (InspectOpts.IncludeOpen); their OpenRows are in Rows too.
	OpenSegments int   `json:"open_segments"`
	OpenRows     int64 `json:"open_rows"`
	// Dropped sums the drop counters of the writers' stats sidecars
	// (DroppedClosed of them were logged after their writer's Close).
	Dropped       uint64 `json:"dropped"`
	DroppedClosed uint64 `json:"dropped_closed"`
	// Failed sums the rows the writers lost to I/O errors.
	Failed uint64 `json:"failed"`
	// Lost is Dropped + Failed: acknowledged or offered rows known not to
	// be in the log. Rows of a crashed writer not yet in its WAL (at most
	// about one FlushInterval) are not counted anywhere.
	Lost uint64 `json:"lost"`
	// Recovered rows were folded from RecoveredSegments WAL segments of
	// crashed writers into Parquet at a writer's start-up; TornRecords
	// incomplete or corrupt WAL records (TornBytes) were cut then, and
	// OrphanTmp unfinished files without a segment removed.
	Recovered         uint64            `json:"recovered"`
	RecoveredSegments uint64            `json:"recovered_segments"`
	TornRecords       uint64            `json:"torn_records"`
	TornBytes         uint64            `json:"torn_bytes"`
	OrphanTmp         uint64            `json:"orphan_tmp"`
	Writers           []WriterStatsFile `json:"writers"`
	// Corrupt lists the files that could not be read, with the reason.
	Corrupt []CorruptFile `json:"corrupt"`
}

// CorruptFile is one unreadable file in a Summary.
type CorruptFile struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// inspectRow is the projection Inspect reads: parquet-go decodes only
// these columns.
type inspectRow struct {
	SchemaVersion int32  `parquet:"schema_version"`
	Time          int64  `parquet:"ts,timestamp(microsecond)"`
	ChosenArm     string `parquet:"chosen_arm"`
	Policy        string `parquet:"policy"`
	PolicyVersion string `parquet:"policy_version"`
	Reason        string `parquet:"reason"`
	Status        string `parquet:"status"`
}

// InspectOpts configures InspectWith.
type InspectOpts struct {
	// Paths are log roots, directories or files.
	Paths []string
	// IncludeOpen also counts the rows of files being written, from their
	// WAL segments (see ReaderOpts.IncludeOpen).
	IncludeOpen bool
}

// Inspect is InspectWith including open files.
func Inspect(ctx context.Context, paths ...string) (*Summary, error) {
	return InspectWith(ctx, InspectOpts{Paths: paths, IncludeOpen: true})
}

// InspectWith summarises the logs under o.Paths (log roots, directories or
// files): row count, time range, policies, arms, schema versions, drop,
// loss and recovery counts from the writers' sidecars (ROOT/_stats),
// unfinished and corrupt files. Corrupt files are listed, not returned as
// errors; the error is for ctx cancellation only.
func InspectWith(ctx context.Context, o InspectOpts) (*Summary, error) {
	paths := o.Paths
	s := &Summary{Paths: paths, Policies: map[string]int64{}, Arms: map[string]int64{}, SchemaVersions: map[int32]int64{},
		Refused: map[string]int64{}, Writers: []WriterStatsFile{}, Corrupt: []CorruptFile{}}
	decs, fbs, errs := listFiles(paths, o.IncludeOpen)
	for _, err := range errs {
		s.addCorrupt(err)
	}
	buf := make([]inspectRow, 1024)
	for _, path := range decs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if strings.HasSuffix(path, walSuffix) {
			if err := s.inspectSegment(path); err != nil {
				s.addCorrupt(err)
			}
			continue
		}
		if err := s.inspectFile(path, buf); err != nil {
			s.addCorrupt(err)
			continue
		}
		s.Files++
	}
	for _, path := range fbs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, pf, err := openParquet(path, TableFeedback)
		if err != nil {
			s.addCorrupt(err)
			continue
		}
		s.FeedbackFiles++
		s.FeedbackRows += pf.NumRows()
		f.Close()
	}
	for _, root := range paths {
		s.TmpFiles += countTmp(root)
		ws, err := readSidecars(filepath.Join(root, StatsDir))
		if err != nil {
			s.addCorrupt(err)
		}
		for _, w := range ws {
			s.Dropped += w.Dropped
			s.DroppedClosed += w.DroppedClosed
			s.Failed += w.Failed
			s.Recovered += w.Recovered
			s.RecoveredSegments += w.RecoveredSegments
			s.TornRecords += w.TornRecords
			s.TornBytes += w.TornBytes
			s.OrphanTmp += w.OrphanTmp
			s.Writers = append(s.Writers, w)
		}
	}
	s.Lost = s.Dropped + s.Failed
	return s, nil
}

func (s *Summary) addCorrupt(err error) {
	var fe *FileError
	if errors.As(err, &fe) {
		s.Corrupt = append(s.Corrupt, CorruptFile{Path: fe.Path, Error: fe.Err.Error()})
		return
	}
	s.Corrupt = append(s.Corrupt, CorruptFile{Error: err.Error()})
}

// inspectFile reads the projection of one file; the summary changes only
// if the whole file reads.
func (s *Summary) inspectFile(path string, buf []inspectRow) error {
	f, pf, err := openParquet(path, TableDecisions)
	if err != nil {
		return err
	}
	defer f.Close()
	var rd *parquet.GenericReader[inspectRow]
	if err := safely(func() error { rd = parquet.NewGenericReader[inspectRow](pf); return nil }); err != nil {
		return &FileError{Path: path, Err: err}
	}
	defer safely(rd.Close)
	type key struct{ a, b string }
	var (
		rows        int64
		first, last int64 = 1<<63 - 1, -1 << 63
		policies          = map[key]int64{}
		arms              = map[string]int64{}
		versions          = map[int32]int64{}
		refused           = map[string]int64{}
	)
	for {
		var n int
		err := safely(func() error {
			var err error
			n, err = rd.Read(buf)
			return err
		})
		for i := range buf[:n] {
			r := &buf[i]
			rows++
			first, last = min(first, r.Time), max(last, r.Time)
			versions[r.SchemaVersion]++
			if r.Status == statusRefused {
				refused[r.Reason]++
				continue
			}
			policies[key{r.Policy, r.PolicyVersion}]++
			arms[r.ChosenArm]++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &FileError{Path: path, Err: fmt.Errorf("read rows: %w", err)}
		}
	}
	if rows == 0 {
		return nil
	}
	if s.Rows == 0 || fromMicros(first).Before(s.First) {
		s.First = fromMicros(first)
	}
	if s.Rows == 0 || fromMicros(last).After(s.Last) {
		s.Last = fromMicros(last)
	}
	s.Rows += rows
	for k, v := range policies {
		s.Policies[k.a+"@"+k.b] += v
	}
	for k, v := range arms {
		s.Arms[k] += v
	}
	for k, v := range versions {
		s.SchemaVersions[k] += v
	}
	for k, v := range refused {
		s.Refused[k] += v
	}
	return nil
}

// statusRefused is decision.StatusRefused as logged.
var statusRefused = decision.StatusRefused.String()

// inspectSegment adds the complete records of an open file's WAL segment.
func (s *Summary) inspectSegment(path string) error {
	buf := make([]Row, 256)
	var rows int64
	_, _, err := readSegmentFile[Row](rowCodec{}, path, buf, func(rs []Row) bool {
		for i := range rs {
			r := &rs[i]
			t := fromMicros(r.Time)
			if s.Rows == 0 || t.Before(s.First) {
				s.First = t
			}
			if s.Rows == 0 || t.After(s.Last) {
				s.Last = t
			}
			s.Rows++
			rows++
			s.SchemaVersions[r.SchemaVersion]++
			if r.Status == statusRefused {
				s.Refused[r.Reason]++
				continue
			}
			s.Policies[r.Policy+"@"+r.PolicyVersion]++
			s.Arms[r.ChosenArm]++
		}
		return true
	})
	if errors.Is(err, fs.ErrNotExist) {
		// Committed since listed: read the file instead.
		final := strings.TrimSuffix(path, walSuffix)
		if _, serr := os.Stat(final); serr != nil {
			return nil
		}
		if err := s.inspectFile(final, make([]inspectRow, 1024)); err != nil {
			return err
		}
		s.Files++
		return nil
	}
	if err != nil {
		return &FileError{Path: path, Err: err}
	}
	s.OpenSegments++
	s.OpenRows += rows
	return nil
}

func countTmp(root string) int {
	n := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet.tmp") {
			n++
		}
		return nil
	})
	return n
}

// readSidecars reads every writer stats file in dir (absent dir: none).
func readSidecars(dir string) ([]WriterStatsFile, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []WriterStatsFile
	var errs []error
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, &FileError{Path: name, Err: err})
			continue
		}
		var w WriterStatsFile
		if err := json.Unmarshal(b, &w); err != nil {
			errs = append(errs, &FileError{Path: name, Err: fmt.Errorf("stats sidecar: %w", err)})
			continue
		}
		out = append(out, w)
	}
	return out, errors.Join(errs...)
}
