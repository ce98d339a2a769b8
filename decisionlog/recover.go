package decisionlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/routelab/routelab/internal/atomicfile"
)

// recoverDir runs at writer start-up, before the disk goroutine: it turns
// the WAL segments left by dead writers under p.dir into committed
// Parquet files, and removes .tmp files that have no segment.
//
// A segment is left alone while another writer holds its lock (a live
// replica sharing the root); flock is released by the kernel when a
// process dies, even by SIGKILL. Recovery is idempotent: the segment is
// deleted only after its file is committed, and a segment whose file is
// already committed (crash between rename and delete) is just deleted.
// Per-segment problems are recorded (Err) and leave the segment in place;
// the writer starts anyway.
func (p *pipeline[R]) recoverDir() error {
	var wals, tmps, news []string
	err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case strings.HasSuffix(path, ".parquet"+walSuffix):
			wals = append(wals, path)
		case strings.HasSuffix(path, ".parquet.tmp"):
			tmps = append(tmps, path)
		case strings.HasSuffix(path, ".parquet"+walSuffix+walNewSuffix):
			news = append(news, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover %s: %w", p.dir, err)
	}
	// A segment cut while being created holds no rows; remove it unless
	// its writer is still creating it (locked).
	for _, n := range news {
		if f, err := os.Open(n); err == nil {
			if ok, _ := tryLock(f); ok {
				os.Remove(n)
			}
			f.Close()
		}
	}
	hasWAL := map[string]bool{}
	for _, w := range wals {
		hasWAL[strings.TrimSuffix(w, walSuffix)] = true
		if err := p.recoverSegment(w); err != nil {
			p.setErr(err)
		}
	}
	for _, t := range tmps {
		final := strings.TrimSuffix(t, ".tmp")
		if hasWAL[final] {
			continue // recovered above (tmp removed) or owned by a live writer
		}
		if _, err := os.Stat(final + walSuffix); err == nil {
			continue // a writer opened it after the walk
		}
		if err := os.Remove(t); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				p.setErr(fmt.Errorf("recover: remove %s: %w", t, err))
			}
			continue
		}
		p.orphanTmp.Add(1)
	}
	if len(wals) > 0 || len(tmps) > 0 {
		p.writeSidecar(false)
	}
	return nil
}

// recoverSegment folds one segment into a committed Parquet file.
func (p *pipeline[R]) recoverSegment(walPath string) error {
	final := strings.TrimSuffix(walPath, walSuffix)
	tmp := final + ".tmp"
	f, err := os.Open(walPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // committed by its writer meanwhile
		}
		return fmt.Errorf("recover %s: %w", walPath, err)
	}
	defer f.Close()
	locked, err := tryLock(f)
	if err != nil {
		return fmt.Errorf("recover %s: lock: %w", walPath, err)
	}
	if !locked {
		return nil // a live writer owns it
	}
	// The segment may have been committed and deleted between the walk and
	// the lock: then the name no longer refers to this file.
	if _, err := os.Stat(walPath); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(final); err == nil {
		// Committed before the crash; only the delete was missing.
		return p.dropSegment(walPath, tmp)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("recover %s: %w", walPath, err)
	}
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("recover %s: %w", walPath, err)
	}
	pw := p.newParquetWriter(out)
	var werr error
	buf := make([]R, max(1, p.o.BatchRows))
	ss, _, err := scanSegment(p.walCodec, f, st.Size(), buf, func(rows []R) bool {
		_, werr = pw.Write(rows)
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err == nil && ss.Rows == 0 {
		// Nothing intact: no file to commit.
		out.Close()
		p.countTorn(ss)
		p.recoveredSegs.Add(1)
		return p.dropSegment(walPath, tmp)
	}
	if err == nil {
		err = pw.Close()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(final))
	}
	if err != nil {
		return fmt.Errorf("recover %s: %w", walPath, err)
	}
	p.countTorn(ss)
	p.recovered.Add(uint64(ss.Rows))
	p.recoveredSegs.Add(1)
	return p.dropSegment(walPath, tmp)
}

func (p *pipeline[R]) countTorn(ss SegmentStats) {
	if ss.Torn {
		p.tornRecords.Add(1)
		p.tornBytes.Add(uint64(ss.TornBytes))
	}
}

// dropSegment deletes a recovered segment and any leftover .tmp.
func (p *pipeline[R]) dropSegment(walPath, tmp string) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover: remove %s: %w", tmp, err)
	}
	if err := os.Remove(walPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover: remove %s: %w", walPath, err)
	}
	return atomicfile.SyncDir(filepath.Dir(walPath))
}

// newParquetWriter returns a Parquet writer of the table onto f.
func (p *pipeline[R]) newParquetWriter(f *os.File) *parquet.GenericWriter[R] {
	return parquet.NewGenericWriter[R](f, p.parquetOpts...)
}
