package artifact

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// HistoryFile is the name of the promotion/rollback history in an artifact
// directory (the gateway's checkpoint.dir): one JSON object per line,
// appended and fsynced per record, never rewritten.
const HistoryFile = "history.jsonl"

// History actions.
const (
	ActionPromote   = "promote"
	ActionRollback  = "rollback"
	ActionSetPolicy = "set_policy"
	ActionSetShadow = "set_shadow"
)

// PolicyRef names a policy at the moment of a history event.
type PolicyRef struct {
	// Policy is the policy's name, Version its version string
	// (policy.VersionOf, e.g. "1+floor:0.05").
	Policy  string `json:"policy"`
	Version string `json:"version,omitempty"`
	// StateSHA256 is the checksum an artifact of the policy's state at
	// that moment carries (Artifact.StateSHA256); empty for a policy that
	// cannot snapshot (random, weighted).
	StateSHA256 string `json:"state_sha256,omitempty"`
	// Source, for an uploaded or file-loaded artifact, is its provenance
	// source and Created its creation time.
	Source  string     `json:"source,omitempty"`
	Created *time.Time `json:"created,omitempty"`
}

// Estimate is the shadow-vs-serving estimate a promotion was decided on:
// the gateway's running IPS difference with its interval.
type Estimate struct {
	N              int64    `json:"n"`
	ESS            float64  `json:"ess"`
	IncumbentValue float64  `json:"incumbent_value"`
	ShadowValue    float64  `json:"shadow_value"`
	Diff           float64  `json:"diff"`
	CILow          *float64 `json:"ci_low"`
	CIHigh         *float64 `json:"ci_high"`
	Confidence     float64  `json:"confidence"`
	Margin         float64  `json:"margin"`
}

// HistoryRecord is one line of HistoryFile: who changed the serving or
// shadow policy, when, from what to what, and on what evidence.
type HistoryRecord struct {
	Time time.Time `json:"time"`
	// Action is ActionPromote, ActionRollback, ActionSetPolicy or
	// ActionSetShadow.
	Action string `json:"action"`
	// Identity is the admin identity (the key name, "admin-token", or
	// "rollback-guard" for an automatic rollback); Remote its address.
	Identity string `json:"identity"`
	Remote   string `json:"remote,omitempty"`
	// Trigger is "manual" or "auto" for a rollback.
	Trigger string `json:"trigger,omitempty"`
	// Forced is true for a promotion the estimate did not justify.
	Forced bool `json:"forced"`
	// From is the policy replaced, To the one now in its slot.
	From *PolicyRef `json:"from,omitempty"`
	To   *PolicyRef `json:"to,omitempty"`
	// Estimate is the evidence of a promotion (and of a rollback, when
	// there was one).
	Estimate *Estimate `json:"estimate,omitempty"`
	// Floor is the exploration floor promotion added (0 = none added).
	Floor float64 `json:"floor,omitempty"`
	// Reason is the gateway's reason (eligibility, guard threshold).
	Reason string `json:"reason,omitempty"`
}

// AppendHistory appends rec to dir/HistoryFile and fsyncs it, creating
// dir and the file when needed. A crash mid-write can leave at most a
// partial last line, which ReadHistory reports and skips.
func AppendHistory(dir string, rec HistoryRecord) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // reasons hold "ci_low 0.03 > margin 0"
	if err := enc.Encode(rec); err != nil {
		return fmt.Errorf("history: encode: %w", err)
	}
	b := buf.Bytes() // one line, newline-terminated
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	path := filepath.Join(dir, HistoryFile)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("history %s: %w", path, err)
	}
	return nil
}

// ReadHistory reads dir/HistoryFile: nil and no error when there is none.
// Lines that are not records (a torn last line after a crash) are skipped
// and reported in the error, which then wraps ErrArtifact; the records read
// are returned either way.
func ReadHistory(dir string) ([]HistoryRecord, error) {
	path := filepath.Join(dir, HistoryFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	var out []HistoryRecord
	var bad []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r HistoryRecord
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			bad = append(bad, fmt.Errorf("line %d: %w", line, err))
			continue
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, err)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%w: history %s: %d unreadable lines skipped: %w", ErrArtifact, path, len(bad), errors.Join(bad...))
	}
	return out, nil
}
