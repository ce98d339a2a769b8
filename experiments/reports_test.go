package experiments

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/routelab/routelab/policy"
)

// TestCommittedReportRegenerates reruns the committed small report's spec
// and compares every committed output file (all but the Parquet files,
// which hold a wall-clock column) byte for byte: a committed report must be
// a deterministic function of its spec. After an intended change of the
// report's format, regenerate with `make reports`.
func TestCommittedReportRegenerates(t *testing.T) {
	const committed = "reports/small"
	spec, err := LoadSpec("reports/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), spec, Opts{Registry: policy.NewBuiltinRegistry(), Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	list := func(root string) []string {
		var out []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, ".parquet") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	want, got := list(committed), list(dir)
	if !slices.Equal(want, got) {
		t.Fatalf("regenerated files %v, committed %v (run make reports)", got, want)
	}
	if !slices.Contains(want, FileReportHTML) || !slices.Contains(want, FileReportMD) {
		t.Fatalf("committed report %s lacks %s or %s", committed, FileReportMD, FileReportHTML)
	}
	for _, name := range want {
		w, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatal(err)
		}
		g, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w, g) {
			i := 0
			for i < min(len(w), len(g)) && w[i] == g[i] {
				i++
			}
			t.Errorf("%s: regenerated file differs from the committed one at byte %d of %d (run make reports)\ncommitted: %q\nregenerated: %q",
				name, i, len(w), excerpt(w, i), excerpt(g, i))
		}
	}
}

func excerpt(b []byte, i int) string {
	lo, hi := max(0, i-40), min(len(b), i+40)
	return string(b[lo:hi])
}
