package artifact_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routelab/routelab/artifact"
)

func TestHistoryAppendRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "policies")
	recs, err := artifact.ReadHistory(dir)
	if err != nil || recs != nil {
		t.Fatalf("no history: got %v, %v; want nil, nil", recs, err)
	}
	lo, hi := 0.01, 0.05
	want := []artifact.HistoryRecord{
		{Time: time.Unix(100, 0).UTC(), Action: artifact.ActionPromote, Identity: "admin:ab12", Forced: true,
			From:     &artifact.PolicyRef{Policy: "thompson", StateSHA256: strings.Repeat("a", 64)},
			To:       &artifact.PolicyRef{Policy: "linucb", StateSHA256: strings.Repeat("b", 64)},
			Estimate: &artifact.Estimate{N: 900, ESS: 300, Diff: 0.03, CILow: &lo, CIHigh: &hi, Confidence: 0.95}},
		{Time: time.Unix(200, 0).UTC(), Action: artifact.ActionRollback, Trigger: "auto", Identity: "rollback-guard"},
	}
	for _, r := range want {
		if err := artifact.AppendHistory(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := artifact.ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != artifact.ActionPromote || !got[0].Forced || *got[0].Estimate.CILow != lo ||
		got[0].To.StateSHA256 != want[0].To.StateSHA256 || got[1].Trigger != "auto" || !got[1].Time.Equal(want[1].Time) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}

	// A torn last line (a crash mid-append) is skipped and reported; the
	// records before it are kept.
	f, err := os.OpenFile(filepath.Join(dir, artifact.HistoryFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"time":"2026-01-01T00:00:00Z","act`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err = artifact.ReadHistory(dir)
	if len(got) != 2 || err == nil || !errors.Is(err, artifact.ErrArtifact) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("torn line: %d records, err %v; want 2 and an error naming line 3", len(got), err)
	}
}
