package logship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"gocloud.dev/blob"
)

// IsURL reports whether a --logs argument names a bucket (scheme://...)
// rather than a local path.
func IsURL(s string) bool {
	scheme, rest, ok := strings.Cut(s, "://")
	return ok && rest != "" && scheme != "" && !strings.ContainsAny(scheme, `/\`)
}

// FetchOpts narrows what Fetch copies.
type FetchOpts struct {
	// From and To (zero: unbounded) skip the decision files whose hour
	// partition lies wholly outside [From, To), as a Reader with the same
	// range would (decisionlog.KeyInRange); feedback is always fetched.
	From, To time.Time
}

// FetchStats says what Fetch copied.
type FetchStats struct {
	Files int
	Bytes int64
}

// Fetch copies every finished log file under the bucket's prefix (keys
// decisionlog.IsFinishedKey accepts: *.parquet outside "_"/"."
// directories) to dir, under the same relative paths, so that dir reads
// as a log root. Each file is written to a temporary name and renamed
// once its size matches the object's. A bucket with no log file is an
// error; one whose log files all lie outside o's range is not.
func Fetch(ctx context.Context, b *blob.Bucket, dir string, o FetchOpts) (FetchStats, error) {
	found := false
	var st FetchStats
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("list: %w", err)
		}
		if obj.IsDir || !decisionlog.IsFinishedKey(obj.Key) {
			continue
		}
		found = true
		if !decisionlog.KeyInRange(obj.Key, o.From, o.To) {
			continue
		}
		n, err := fetchOne(ctx, b, obj.Key, obj.Size, filepath.Join(dir, filepath.FromSlash(obj.Key)))
		if err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += n
	}
	if !found {
		return st, errors.New("no decision-log file (*.parquet) under this prefix")
	}
	return st, nil
}

func fetchOne(ctx context.Context, b *blob.Bucket, key string, size int64, path string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, fmt.Errorf("fetch %s: %w", key, err)
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", key, err)
	}
	defer r.Close()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", key, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, the listing says %d", n, size)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("fetch %s: %w", key, err)
	}
	return n, nil
}
