package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"

	"github.com/routelab/routelab/internal/atomicfile"
)

// SnapshotFormat is the "format" field of every policy snapshot.
const SnapshotFormat = "routelab/policy-snapshot"

// SnapshotVersion is the snapshot layout this package writes and reads.
// Restore rejects any other version.
const SnapshotVersion = 1

// maxSnapshotBytes bounds what Restore reads, so a wrong file cannot
// exhaust memory.
const maxSnapshotBytes = 256 << 20

// ErrSnapshot is wrapped by every snapshot decoding error.
var ErrSnapshot = errors.New("invalid policy snapshot")

// Snapshotter is implemented by every policy of this package: it saves the
// learned state (statistics, model matrices, random generator state) as a
// versioned JSON document and restores it exactly, so a restored policy
// makes the same decisions as the original from then on. Restore either
// succeeds completely or leaves the policy unchanged. The format is
// documented in the package documentation ("Snapshots").
type Snapshotter interface {
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// envelope is the outer object of a snapshot.
type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Policy  string          `json:"policy"`
	Params  Params          `json:"params"`
	State   json.RawMessage `json:"state"`
}

// speccer gives the registry name and the parameters (without seed) that a
// snapshot records and Restore checks.
type speccer interface {
	spec() Spec
}

// SpecReporter is implemented by policies defined outside this package
// (such as policy/neural's) that report the registry spec — name and
// parameters without seed — their snapshots record. Floor records it in
// its own envelope, so that Load rebuilds a floor-wrapped policy with its
// parameters; this package's policies report theirs internally.
type SpecReporter interface {
	Spec() Spec
}

// ff formats a float parameter so that it parses back exactly.
func ff(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// writeSnapshot writes the envelope around state.
func writeSnapshot(w io.Writer, s Spec, state any) error {
	st, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("snapshot %s: encode state: %w", s.Name, err)
	}
	if s.Params == nil {
		s.Params = Params{}
	}
	b, err := json.Marshal(envelope{Format: SnapshotFormat, Version: SnapshotVersion, Policy: s.Name, Params: s.Params, State: st})
	if err != nil {
		return fmt.Errorf("snapshot %s: encode: %w", s.Name, err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("snapshot %s: write: %w", s.Name, err)
	}
	return nil
}

// readEnvelope reads and strictly decodes a snapshot's outer object.
func readEnvelope(r io.Reader) (envelope, []byte, error) {
	var env envelope
	data, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return env, nil, fmt.Errorf("%w: read: %w", ErrSnapshot, err)
	}
	if len(data) > maxSnapshotBytes {
		return env, nil, fmt.Errorf("%w: larger than %d bytes", ErrSnapshot, maxSnapshotBytes)
	}
	if err := strictJSON(data, &env); err != nil {
		return env, nil, err
	}
	if env.Format != SnapshotFormat {
		return env, nil, fmt.Errorf("%w: format %q, want %q", ErrSnapshot, env.Format, SnapshotFormat)
	}
	if env.Version != SnapshotVersion {
		return env, nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrSnapshot, env.Version, SnapshotVersion)
	}
	if env.Policy == "" {
		return env, nil, fmt.Errorf("%w: no policy name", ErrSnapshot)
	}
	if len(env.State) == 0 {
		return env, nil, fmt.Errorf("%w: no state", ErrSnapshot)
	}
	return env, data, nil
}

// readSnapshot reads a snapshot meant for the policy described by want and
// decodes its state into state. It changes nothing but state.
func readSnapshot(r io.Reader, want Spec, state any) error {
	env, _, err := readEnvelope(r)
	if err != nil {
		return err
	}
	return checkEnvelope(env, want, state)
}

func checkEnvelope(env envelope, want Spec, state any) error {
	if env.Policy != want.Name {
		return fmt.Errorf("%w: snapshot of policy %q, cannot restore into %q", ErrSnapshot, env.Policy, want.Name)
	}
	if err := sameParams(env.Params, want.Params); err != nil {
		return fmt.Errorf("%w: policy %q: %w", ErrSnapshot, want.Name, err)
	}
	if err := strictJSON(env.State, state); err != nil {
		return fmt.Errorf("policy %q state: %w", want.Name, err)
	}
	return nil
}

func sameParams(got, want Params) error {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			return fmt.Errorf("parameter %q missing from snapshot (policy has %q)", k, w)
		case !wok:
			return fmt.Errorf("snapshot has parameter %q = %q the policy does not", k, g)
		case g != w:
			return fmt.Errorf("parameter %q: snapshot has %q, policy has %q", k, g, w)
		}
	}
	return nil
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrSnapshot)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrSnapshot)
	}
	return nil
}

// Load builds the policy a snapshot names, with the snapshot's parameters,
// from reg, and restores its state into it.
func Load(reg *Registry, r io.Reader) (Policy, error) {
	env, data, err := readEnvelope(r)
	if err != nil {
		return nil, err
	}
	p, err := reg.New(Spec{Name: env.Policy, Params: env.Params})
	if err != nil {
		return nil, fmt.Errorf("%w: build policy: %w", ErrSnapshot, err)
	}
	s, ok := p.(Snapshotter)
	if !ok {
		return nil, fmt.Errorf("%w: policy %q cannot restore snapshots", ErrSnapshot, env.Policy)
	}
	if err := s.Restore(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return p, nil
}

// SaveFile writes p's snapshot to path atomically (internal/atomicfile:
// temporary file, fsync, rename), so a crash never leaves a truncated
// snapshot behind.
func SaveFile(p Policy, path string) error {
	s, ok := p.(Snapshotter)
	if !ok {
		return fmt.Errorf("save policy %q to %s: policy cannot snapshot", p.Name(), path)
	}
	if err := atomicfile.Write(path, s.Snapshot); err != nil {
		return fmt.Errorf("save policy %q: %w", p.Name(), err)
	}
	return nil
}

// LoadFile is Load from a file.
func LoadFile(reg *Registry, path string) (Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load policy snapshot: %w", err)
	}
	defer f.Close()
	p, err := Load(reg, f)
	if err != nil {
		return nil, fmt.Errorf("load policy snapshot %s: %w", path, err)
	}
	return p, nil
}

// armJSON is one arm's statistics in a snapshot.
type armJSON struct {
	ID    string  `json:"id"`
	N     float64 `json:"n"`
	Sum   float64 `json:"sum"`
	SumSq float64 `json:"sum_sq"`
}

func (t *armTable) export() []armJSON {
	out := make([]armJSON, len(t.stats))
	for i, s := range t.stats {
		out[i] = armJSON{ID: t.ids[i], N: s.n, Sum: s.sum, SumSq: s.sumSq}
	}
	return out
}

// importArms validates saved statistics and builds a table from them;
// check, when not nil, adds model-specific constraints.
func importArms(in []armJSON, check func(armStats) error) (armTable, error) {
	t := newArmTable()
	for i, a := range in {
		if a.ID == "" {
			return t, fmt.Errorf("%w: arms[%d]: empty id", ErrSnapshot, i)
		}
		if _, dup := t.index[a.ID]; dup {
			return t, fmt.Errorf("%w: arms[%d]: id %q twice", ErrSnapshot, i, a.ID)
		}
		s := armStats{n: a.N, sum: a.Sum, sumSq: a.SumSq}
		if !finite(s.n, s.sum, s.sumSq) || s.n < 0 || s.sumSq < 0 {
			return t, fmt.Errorf("%w: arms[%d] %q: statistics n=%v sum=%v sum_sq=%v not finite and non-negative", ErrSnapshot, i, a.ID, s.n, s.sum, s.sumSq)
		}
		if check != nil {
			if err := check(s); err != nil {
				return t, fmt.Errorf("%w: arms[%d] %q: %w", ErrSnapshot, i, a.ID, err)
			}
		}
		t.stats[t.slot(a.ID)] = s
	}
	return t, nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
