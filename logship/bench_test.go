package logship

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob/fileblob"
)

// BenchmarkPassFileBucket ships 16 files of 4 MiB to a file:// bucket per
// iteration (upload, MD5 verification from the attributes, manifest
// fsync, delete); bytes/s is the shipping throughput.
func BenchmarkPassFileBucket(b *testing.B) {
	const files, size = 16, 4 << 20
	data := make([]byte, size)
	_, _ = rand.Read(data)
	b.SetBytes(files * size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root := b.TempDir()
		dir := filepath.Join(root, "decisions", "dt=2026-12-04", "hour=07")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("dec-%d-%d.parquet", i, f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		bucket, err := fileblob.OpenBucket(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Opts{Root: root, Bucket: bucket, DeleteAfterUpload: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.Pass(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		_ = bucket.Close()
		b.StartTimer()
	}
}
