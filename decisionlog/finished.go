package decisionlog

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
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
