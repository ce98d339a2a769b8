package experiments

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/routelab/routelab/internal/atomicfile"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// Shard is one deterministic slice of an experiment's cells: shard Index of
// Count takes the cells whose grid index (scenario, then policy, then
// seed, as in Results.Cells) is Index modulo Count. Round-robin rather
// than contiguous blocks, so every shard gets a mix of scenarios and
// policies and the shards take about the same time.
type Shard struct {
	Index, Count int
}

// ParseShard parses "I/N" (0 <= I < N).
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want I/N, e.g. 0/4", s)
	}
	idx, err1 := strconv.Atoi(strings.TrimSpace(i))
	cnt, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err := errors.Join(err1, err2); err != nil {
		return Shard{}, fmt.Errorf("shard %q: want I/N with whole numbers: %w", s, err)
	}
	sh := Shard{Index: idx, Count: cnt}
	return sh, sh.validate()
}

func (s Shard) validate() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d/%d: want 0 <= I < N and N >= 1", s.Index, s.Count)
	}
	return nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// has reports whether the cell with grid index idx belongs to the shard.
func (s Shard) has(idx int) bool { return idx%s.Count == s.Index }

// PartialFileName is the name under which WritePartial stores a shard's
// cells: part-IIII-of-NNNN.gob, so that the slices of one experiment
// gathered into one directory do not collide.
func PartialFileName(s Shard) string {
	return fmt.Sprintf("part-%04d-of-%04d.gob", s.Index, s.Count)
}

// Partial is what one shard ran: its cells (with their grid index) and the
// effective spec they came from. Merge reassembles the Results of the
// whole grid from the partials of every shard.
type Partial struct {
	Shard Shard
	// Spec is the effective spec (Spec.Marshal) every shard must share.
	Spec []byte
	// Total is the number of cells of the whole grid.
	Total int
	Cells []PartialCell
	// Started and Elapsed are the shard's wall-clock facts.
	Started time.Time
	Elapsed time.Duration
	Workers int
}

// PartialCell is a Cell with its index in the whole grid.
type PartialCell struct {
	Index      int
	Scenario   string
	Policy     string
	PolicySpec string
	Seed       uint64
	PolicySeed uint64
	Result     *sim.Result
	TaskCounts map[string]map[string][]float64
}

// partialVersion is the format version of a partial file; Merge refuses
// any other.
const partialVersion = 1

type partialFile struct {
	Version int
	Partial
}

// RunShard runs the cells of shard sh only (see Run; the same cells give
// the same numbers as in a whole run, whatever the shard count).
func RunShard(ctx context.Context, spec *Spec, o Opts, sh Shard) (*Partial, error) {
	if err := sh.validate(); err != nil {
		return nil, err
	}
	res, err := run(ctx, spec, o, sh.has)
	if err != nil {
		return nil, err
	}
	specYAML, err := spec.Marshal()
	if err != nil {
		return nil, err
	}
	p := &Partial{Shard: sh, Spec: specYAML, Total: len(res.Cells), Started: res.Started, Elapsed: res.Elapsed, Workers: res.Workers}
	for i, c := range res.Cells {
		if !sh.has(i) {
			continue
		}
		p.Cells = append(p.Cells, PartialCell{
			Index: i, Scenario: c.Scenario, Policy: c.Policy, PolicySpec: c.PolicySpec,
			Seed: c.Seed, PolicySeed: c.PolicySeed, Result: c.Result, TaskCounts: c.taskCounts,
		})
	}
	return p, nil
}

// WritePartial writes p to dir/PartialFileName(p.Shard) (gob, atomically:
// a partial file either is complete or is absent) and returns its path.
func WritePartial(dir string, p *Partial) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write partial: %w", err)
	}
	path := filepath.Join(dir, PartialFileName(p.Shard))
	err := atomicfile.Write(path, func(w io.Writer) error {
		return gob.NewEncoder(w).Encode(partialFile{Version: partialVersion, Partial: *p})
	})
	if err != nil {
		return "", fmt.Errorf("write partial %s: %w", path, err)
	}
	return path, nil
}

// ReadPartials reads every part-*.gob file in the given directories (or
// the named files).
func ReadPartials(paths ...string) ([]*Partial, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read partials: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "part-*-of-*.gob"))
		if err != nil {
			return nil, fmt.Errorf("read partials in %s: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("read partials: %s has no part-*-of-*.gob file (written by experiment --shard)", p)
		}
		files = append(files, m...)
	}
	out := make([]*Partial, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read partial: %w", err)
		}
		var pf partialFile
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&pf); err != nil {
			return nil, fmt.Errorf("read partial %s: not a partial file: %w", f, err)
		}
		if pf.Version != partialVersion {
			return nil, fmt.Errorf("read partial %s: format version %d, this program reads %d", f, pf.Version, partialVersion)
		}
		p := pf.Partial
		out = append(out, &p)
	}
	return out, nil
}

// Merge reassembles the Results of the whole grid from the partials of
// every shard: they must share one spec and shard count, and together hold
// every cell exactly once. The spec is re-parsed from the partials and
// validated with reg (dir resolves relative scenario paths; the effective
// spec has none). The Results equal those of one Run of the spec — the
// report and Parquet tables written from them are the same, but for the
// wall-clock columns, which are the shards' own — with Started the
// earliest shard's start, Elapsed the longest shard's and Workers the sum.
func Merge(parts []*Partial, reg *policy.Registry, dir string) (*Results, error) {
	if len(parts) == 0 {
		return nil, errors.New("merge: no partials")
	}
	first := parts[0]
	seen := map[int]bool{}
	for _, p := range parts {
		switch {
		case !bytes.Equal(p.Spec, first.Spec):
			return nil, fmt.Errorf("merge: shard %v ran a different spec than shard %v", p.Shard, first.Shard)
		case p.Shard.Count != first.Shard.Count:
			return nil, fmt.Errorf("merge: shard %v and shard %v split the grid differently", p.Shard, first.Shard)
		case p.Total != first.Total:
			return nil, fmt.Errorf("merge: shard %v has %d cells in its grid, shard %v %d", p.Shard, p.Total, first.Shard, first.Total)
		case seen[p.Shard.Index]:
			return nil, fmt.Errorf("merge: shard %v given twice", p.Shard)
		}
		seen[p.Shard.Index] = true
	}
	var missing []string
	for i := range first.Shard.Count {
		if !seen[i] {
			missing = append(missing, Shard{i, first.Shard.Count}.String())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("merge: shards %s missing", strings.Join(missing, ", "))
	}
	spec, err := ParseSpec(first.Spec, dir)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := spec.Validate(reg); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	res := &Results{Spec: spec, Cells: make([]Cell, first.Total)}
	filled := make([]bool, first.Total)
	for _, p := range parts {
		if res.Started.IsZero() || p.Started.Before(res.Started) {
			res.Started = p.Started
		}
		res.Elapsed = max(res.Elapsed, p.Elapsed)
		res.Workers += p.Workers
		for _, c := range p.Cells {
			if c.Index < 0 || c.Index >= first.Total || !p.Shard.has(c.Index) || filled[c.Index] || c.Result == nil {
				return nil, fmt.Errorf("merge: shard %v holds cell %d, which is not its own or is damaged", p.Shard, c.Index)
			}
			filled[c.Index] = true
			res.Cells[c.Index] = Cell{
				Scenario: c.Scenario, Policy: c.Policy, PolicySpec: c.PolicySpec,
				Seed: c.Seed, PolicySeed: c.PolicySeed, Result: c.Result, taskCounts: c.TaskCounts,
			}
		}
	}
	if i := slices.Index(filled, false); i >= 0 {
		return nil, fmt.Errorf("merge: no shard holds cell %d of %d", i, first.Total)
	}
	return res, nil
}
