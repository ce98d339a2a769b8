package decisionlog

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FinishedFiles lists the finished (committed) log files under root,
// decisions and feedback, in path order: *.parquet files, renamed into
// place only once complete, so safe to copy, upload or delete. Open files
// (*.parquet.tmp and their *.parquet.wal segments) and "_"/"." directories
// (_stats) are left out. It is the listing the Reader makes.
func FinishedFiles(root string) ([]string, error) {
	decs, fbs, errs := listFiles([]string{root}, false)
	files := append(decs, fbs...)
	slices.Sort(files)
	return files, errors.Join(errs...)
}

// IsFinishedKey reports whether key, a slash-separated path relative to a
// log root (as in an object store), names a file FinishedFiles would list.
func IsFinishedKey(key string) bool {
	dirs := strings.Split(key, "/")
	name := dirs[len(dirs)-1]
	for _, d := range dirs[:len(dirs)-1] {
		if d == "" || strings.HasPrefix(d, "_") || strings.HasPrefix(d, ".") {
			return false
		}
	}
	return strings.HasSuffix(name, ".parquet") && !strings.HasPrefix(name, ".") && filepath.Base(name) == name
}

// KeyInRange reports whether the finished file at key (as in IsFinishedKey)
// may hold decisions in [from, to) (zero: unbounded): false only for a
// decisions file whose dt=/hour= partition lies wholly outside, the
// partitions a Reader with that range would not open. Feedback files are
// always in range: feedback may arrive long after the decision it rates.
func KeyInRange(key string, from, to time.Time) bool {
	path := filepath.FromSlash(key)
	if isFeedbackFile(path) {
		return true
	}
	var f, t int64 = -1 << 63, 1<<63 - 1
	if !from.IsZero() {
		f = toMicros(from)
	}
	if !to.IsZero() {
		t = toMicros(to)
	}
	return partitionOverlaps(path, f, t)
}
