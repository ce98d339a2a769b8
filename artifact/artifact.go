package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/atomicfile"
	"github.com/routelab/routelab/policy"
)

// Format is the "format" field of every artifact.
const Format = "routelab/policy-artifact"

// Version is the artifact layout this package writes and reads; Read
// rejects any other.
const Version = 1

// maxBytes bounds what Read reads, so a wrong file cannot exhaust memory.
const maxBytes = 1 << 30

// ErrArtifact is wrapped by every error of Read and Decode.
var ErrArtifact = errors.New("invalid policy artifact")

// ErrMismatch is wrapped by every error of Check.
var ErrMismatch = errors.New("policy artifact does not match")

// Provenance records where an artifact came from. Every field is optional.
type Provenance struct {
	// Source is what wrote it: "train", "neural fit", "sim", "checkpoint".
	Source string `json:"source,omitempty"`
	// From and To bound the times of the data it learned from.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Rows is the number of logged rows (or simulated requests) it learned from.
	Rows int64 `json:"rows,omitempty"`
	// Seed is the seed of the run that produced it.
	Seed uint64 `json:"seed,omitempty"`
	// Scenario is the simulator scenario, when there was one.
	Scenario string `json:"scenario,omitempty"`
	// Data names the inputs (log directories).
	Data []string `json:"data,omitempty"`
	// Command is the command line.
	Command []string `json:"command,omitempty"`
	// Created is when the artifact was written; New sets it when zero.
	Created time.Time `json:"created"`
	// CodeVersion is the module version and VCS revision of the writer;
	// New sets it from runtime/debug build information when empty.
	CodeVersion string `json:"code_version,omitempty"`
	// Note is free text (e.g. how the encoder spec was determined).
	Note string `json:"note,omitempty"`
}

// Artifact is a learned policy with everything needed to use it correctly.
type Artifact struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Spec is the policy spec as the CLI accepts it (NAME=key:value;...).
	Spec string `json:"spec"`
	// Encoder is the feature encoder the policy was trained with.
	Encoder policy.EncoderSpec `json:"encoder"`
	// Reward is the reward it was trained with, every field set.
	Reward decision.RewardSpec `json:"reward"`
	// Catalogue is the sorted arm ids it knows.
	Catalogue  []string   `json:"catalogue"`
	Provenance Provenance `json:"provenance"`
	// StateSHA256 is the hex SHA-256 of State (compact JSON).
	StateSHA256 string `json:"state_sha256"`
	// State is the policy's snapshot (policy.Snapshotter).
	State json.RawMessage `json:"state"`
}

// snapHead is the part of a policy snapshot the artifact reads.
type snapHead struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	Policy  string        `json:"policy"`
	Params  policy.Params `json:"params"`
}

// New snapshots p (which must implement policy.Snapshotter) into an
// artifact trained with enc and reward over catalogue. Provenance's Created
// and CodeVersion are filled in when zero.
func New(p policy.Policy, enc policy.EncoderSpec, reward decision.Reward, catalogue []string, prov Provenance) (*Artifact, error) {
	if p == nil {
		return nil, errors.New("artifact: no policy")
	}
	s, ok := p.(policy.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("artifact: policy %q cannot snapshot its state", p.Name())
	}
	if err := enc.Validate(); err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	if err := reward.Validate(); err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	if len(catalogue) == 0 {
		return nil, errors.New("artifact: empty catalogue")
	}
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	state, head, err := compactState(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("artifact: policy %q wrote %w", p.Name(), err)
	}
	if prov.Created.IsZero() {
		prov.Created = time.Now().UTC()
	}
	if prov.CodeVersion == "" {
		prov.CodeVersion = CodeVersion()
	}
	var encJSON policy.EncoderSpec
	if err := json.Unmarshal(enc.Canonical(), &encJSON); err != nil {
		return nil, fmt.Errorf("artifact: encoder: %w", err)
	}
	return &Artifact{
		Format: Format, Version: Version,
		Spec:        policy.Spec{Name: head.Policy, Params: head.Params}.String(),
		Encoder:     encJSON,
		Reward:      SpecOf(reward),
		Catalogue:   sortedUnique(catalogue),
		Provenance:  prov,
		StateSHA256: digest(state),
		State:       state,
	}, nil
}

// compactState checks that b is a policy snapshot and returns it compact.
func compactState(b []byte) (json.RawMessage, snapHead, error) {
	var head snapHead
	var c bytes.Buffer
	if err := json.Compact(&c, bytes.TrimSpace(b)); err != nil {
		return nil, head, fmt.Errorf("a state that is not JSON: %w", err)
	}
	if err := json.Unmarshal(c.Bytes(), &head); err != nil {
		return nil, head, fmt.Errorf("a state that is not a snapshot object: %w", err)
	}
	if head.Format != policy.SnapshotFormat {
		return nil, head, fmt.Errorf("a state of format %q, want %q", head.Format, policy.SnapshotFormat)
	}
	if head.Policy == "" {
		return nil, head, errors.New("a state naming no policy")
	}
	return c.Bytes(), head, nil
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func sortedUnique(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// SpecOf returns the RewardSpec with every field set to r's value (lambda
// only when not 0, so artifacts without a willingness to pay read as
// before).
func SpecOf(r decision.Reward) decision.RewardSpec {
	f := func(v float64) *float64 { return &v }
	lr := decision.Duration(r.LatencyRef)
	s := decision.RewardSpec{
		Quality: f(r.Quality), Cost: f(r.Cost), Latency: f(r.Latency), Failure: f(r.Failure),
		CostRef: f(r.CostRef), LatencyRef: &lr, UnknownQuality: f(r.UnknownQuality),
	}
	if r.Lambda != 0 {
		s.Lambda = f(r.Lambda)
	}
	return s
}

// CodeVersion describes the running binary from its build information:
// module path@version and, when built from a VCS checkout, the revision
// (and "+dirty").
func CodeVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Path + "@" + bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}

// Policy builds the artifact's policy from reg and restores its learned
// state, so it decides as the saved policy would have.
func (a *Artifact) Policy(reg *policy.Registry) (policy.Policy, error) {
	p, err := policy.Load(reg, bytes.NewReader(a.State))
	if err != nil {
		return nil, fmt.Errorf("artifact policy %s: %w", a.Spec, err)
	}
	return p, nil
}

// RewardFunc resolves the artifact's reward.
func (a *Artifact) RewardFunc() (decision.Reward, error) { return a.Reward.Reward() }

// Check reports whether the artifact fits a consumer using enc, reward and
// catalogue; the error (wrapping ErrMismatch) names both sides. The
// catalogue must hold the same arm ids (in any order).
func (a *Artifact) Check(enc policy.EncoderSpec, reward decision.Reward, catalogue []string) error {
	if !a.Encoder.Equal(enc) {
		return fmt.Errorf("%w: encoder: artifact was trained with %s, this one uses %s", ErrMismatch, a.Encoder.Canonical(), enc.Canonical())
	}
	ar, err := a.RewardFunc()
	if err != nil {
		return fmt.Errorf("%w: artifact reward: %w", ErrMismatch, err)
	}
	if ar != reward {
		return fmt.Errorf("%w: reward: artifact was trained with %s, this one uses %s", ErrMismatch, rewardString(ar), rewardString(reward))
	}
	want := sortedUnique(catalogue)
	if !slices.Equal(a.Catalogue, want) {
		var missing, extra []string
		for _, id := range want {
			if !slices.Contains(a.Catalogue, id) {
				missing = append(missing, id)
			}
		}
		for _, id := range a.Catalogue {
			if !slices.Contains(want, id) {
				extra = append(extra, id)
			}
		}
		return fmt.Errorf("%w: catalogue: artifact knows [%s], this one has [%s] (unknown to the artifact: [%s]; not in this catalogue: [%s])",
			ErrMismatch, strings.Join(a.Catalogue, " "), strings.Join(want, " "), strings.Join(missing, " "), strings.Join(extra, " "))
	}
	return nil
}

func rewardString(r decision.Reward) string {
	lam := ""
	if r.Lambda != 0 {
		lam = fmt.Sprintf(" lambda %g", r.Lambda)
	}
	return fmt.Sprintf("{quality %g cost %g latency %g failure %g cost_ref %g latency_ref %s unknown_quality %g%s}",
		r.Quality, r.Cost, r.Latency, r.Failure, r.CostRef, r.LatencyRef, r.UnknownQuality, lam)
}

// Encode writes a as indented JSON.
func (a *Artifact) Encode(w io.Writer) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("artifact: encode: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Write writes a to path atomically (internal/atomicfile: temporary file,
// fsync, rename, fsync of the directory); a crash never leaves a truncated
// artifact at path.
func Write(path string, a *Artifact) error {
	if err := atomicfile.Write(path, a.Encode); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	return nil
}

// Read reads and validates the artifact at path.
func Read(path string) (*Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read artifact: %w", err)
	}
	defer f.Close()
	a, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("read artifact %s: %w", path, err)
	}
	return a, nil
}

// Decode reads and validates one artifact from r.
func Decode(r io.Reader) (*Artifact, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrArtifact, err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrArtifact, maxBytes)
	}
	return decodeBytes(data)
}

func decodeBytes(data []byte) (*Artifact, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrArtifact)
	}
	// The header first, so that another version or format is reported as
	// such rather than as an unknown field.
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end of JSON input") {
			return nil, fmt.Errorf("%w: truncated or corrupt JSON (%d bytes): %w", ErrArtifact, len(data), err)
		}
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	switch {
	case head.Format == policy.SnapshotFormat:
		return nil, fmt.Errorf("%w: this is a bare policy snapshot (format %q), not an artifact: it records no encoder, reward or catalogue; re-train with --out, or read it where snapshots are accepted (--snapshot, --init)", ErrArtifact, head.Format)
	case head.Format != Format:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrArtifact, head.Format, Format)
	case head.Version != Version:
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrArtifact, head.Version, Version)
	}
	var a Artifact
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrArtifact)
	}
	if len(a.State) == 0 || string(a.State) == "null" {
		return nil, fmt.Errorf("%w: no state", ErrArtifact)
	}
	state, head2, err := compactState(a.State)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	if got := digest(state); got != a.StateSHA256 {
		return nil, fmt.Errorf("%w: state checksum %s, recorded %s: the state was changed or corrupted", ErrArtifact, got, a.StateSHA256)
	}
	a.State = state
	if want := (policy.Spec{Name: head2.Policy, Params: head2.Params}).String(); a.Spec != want {
		return nil, fmt.Errorf("%w: spec %q does not match its state's %q", ErrArtifact, a.Spec, want)
	}
	if err := a.Encoder.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	if _, err := a.Reward.Reward(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	if len(a.Catalogue) == 0 {
		return nil, fmt.Errorf("%w: empty catalogue", ErrArtifact)
	}
	if !slices.IsSorted(a.Catalogue) || len(slices.Compact(slices.Clone(a.Catalogue))) != len(a.Catalogue) {
		return nil, fmt.Errorf("%w: catalogue is not sorted and unique", ErrArtifact)
	}
	return &a, nil
}

// LoadPolicy reads path as an artifact or, for compatibility, as a bare
// policy snapshot (as written by earlier versions of `routelab train`), and
// builds its policy from reg. The artifact is nil for a bare snapshot.
func LoadPolicy(reg *policy.Registry, path string) (policy.Policy, *Artifact, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy file: %w", err)
	}
	var head struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(data, &head) == nil && head.Format == policy.SnapshotFormat {
		p, err := policy.Load(reg, bytes.NewReader(data))
		if err != nil {
			return nil, nil, fmt.Errorf("load policy snapshot %s: %w", path, err)
		}
		return p, nil, nil
	}
	a, err := decodeBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact %s: %w", path, err)
	}
	p, err := a.Policy(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, a, nil
}
