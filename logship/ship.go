package logship

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/internal/atomicfile"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ManifestPath is where, under a log root, the Shipper records what it has
// shipped and verified (JSON lines, fsynced per file).
const ManifestPath = "_ship/manifest.jsonl"

// Opts configures New. Root and Bucket are required.
type Opts struct {
	// Root is the decision log root (decisionlog.WriterOpts.Root).
	Root string
	// Bucket receives the files; the caller opens it (blob.OpenBucket)
	// and closes it after the Shipper.
	Bucket *blob.Bucket
	// URL names the bucket in logs and errors.
	URL string
	// Interval is the time between passes of Run (default 30s).
	Interval time.Duration
	// DeleteAfterUpload removes each local file once its upload is
	// verified and recorded.
	DeleteAfterUpload bool
	// MaxAttempts is the number of tries per file and pass (default 5);
	// InitialBackoff (default 500ms) doubles up to MaxBackoff (default
	// 30s) between them, with jitter.
	MaxAttempts                int
	InitialBackoff, MaxBackoff time.Duration
	// FinalPassTimeout bounds Run's last pass after its context ends
	// (default 20s: within a typical termination grace period).
	FinalPassTimeout time.Duration
	// Logger receives a line per failed upload; nil discards.
	Logger *slog.Logger

	// afterWrite, in tests, runs after the first chunk of key has been
	// written to the bucket (mid-upload: an error aborts the upload) and
	// after its object is committed, before the manifest records it.
	afterWrite func(key string, committed bool) error
}

// Stats are the Shipper's counters.
type Stats struct {
	// Uploaded files and bytes, verified; Skipped files found already
	// shipped (in the manifest, or in the bucket after a crash).
	Uploaded, UploadedBytes, Skipped uint64
	// Failed counts files whose every attempt failed in a pass.
	Failed uint64
	// Deleted local files.
	Deleted uint64
	// Pending is the number of finished files not shipped after the last
	// pass.
	Pending int
	// LastPass is when the last pass ended.
	LastPass time.Time
}

// Shipper uploads finished decision-log files; see the package doc.
type Shipper struct {
	o Opts

	passMu sync.Mutex // one pass at a time
	man    *os.File
	done   map[string]entry // key → what was shipped

	uploaded, uploadedBytes, skipped, failed, deleted atomic.Uint64
	pending                                           atomic.Int64
	lastPass                                          atomic.Int64 // unix nanos
}

// entry is one manifest line.
type entry struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

// New loads (and compacts) the manifest under o.Root. Nothing is uploaded
// until Run or Pass.
func New(o Opts) (*Shipper, error) {
	switch {
	case o.Root == "":
		return nil, errors.New("logship: no log root")
	case o.Bucket == nil:
		return nil, fmt.Errorf("logship %s: no bucket", o.Root)
	case o.Interval < 0 || o.MaxAttempts < 0 || o.InitialBackoff < 0 || o.MaxBackoff < 0 || o.FinalPassTimeout < 0:
		return nil, fmt.Errorf("logship %s: interval, attempts and backoffs must be >= 0", o.Root)
	}
	if o.Interval == 0 {
		o.Interval = 30 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	if o.FinalPassTimeout == 0 {
		o.FinalPassTimeout = 20 * time.Second
	}
	if o.InitialBackoff == 0 {
		o.InitialBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Shipper{o: o, done: map[string]entry{}}
	if err := s.openManifest(); err != nil {
		return nil, err
	}
	return s, nil
}

// openManifest reads the manifest, keeps the entries whose file is still
// on disk (the others were deleted: nothing left to decide about them),
// rewrites it atomically and opens it for appending.
func (s *Shipper) openManifest() error {
	path := filepath.Join(s.o.Root, filepath.FromSlash(ManifestPath))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("logship manifest: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logship manifest: %w", err)
	}
	var keep []entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e entry
		// A torn line (a crash while appending) is not an entry: that
		// file is checked against the bucket again.
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Key == "" || !decisionlog.IsFinishedKey(e.Key) {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.o.Root, filepath.FromSlash(e.Key))); err != nil {
			continue
		}
		if _, dup := s.done[e.Key]; !dup {
			keep = append(keep, e)
		}
		s.done[e.Key] = e
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range keep {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("logship manifest: %w", err)
	}
	if s.man, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return fmt.Errorf("logship manifest: %w", err)
	}
	return nil
}

// record appends e to the manifest and fsyncs it.
func (s *Shipper) record(e entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := s.man.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("logship manifest: %w", err)
	}
	if err := s.man.Sync(); err != nil {
		return fmt.Errorf("logship manifest: %w", err)
	}
	s.done[e.Key] = e
	return nil
}

// Close closes the manifest; the bucket stays open.
func (s *Shipper) Close() error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if s.man == nil {
		return nil
	}
	err := s.man.Close()
	s.man = nil
	return err
}

// Run makes a pass at once and then every Interval until ctx ends, then a
// last pass (with a fresh context bounded by FinalPassTimeout) so that the
// files finished by a clean shutdown are shipped too; what it cannot ship
// in time stays on disk for the next start. Pass errors are logged.
func (s *Shipper) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		if err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("log shipping pass", "url", s.o.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.FinalPassTimeout)
			defer cancel()
			if err := s.Pass(fctx); err != nil {
				s.o.Logger.Warn("log shipping: last pass", "url", s.o.URL, "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// Pass ships every finished file not shipped yet. A file whose attempts
// all fail is counted (Stats.Failed) and left for the next pass; the
// errors are returned joined.
func (s *Shipper) Pass(ctx context.Context) error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if s.man == nil {
		return errors.New("logship: closed")
	}
	defer func() { s.lastPass.Store(time.Now().UnixNano()) }()
	files, err := decisionlog.FinishedFiles(s.o.Root)
	if err != nil {
		err = fmt.Errorf("list %s: %w", s.o.Root, err)
	}
	errs := []error{err}
	pending := 0
	for i, path := range files {
		if ctx.Err() != nil {
			pending += len(files) - i
			errs = append(errs, ctx.Err())
			break
		}
		if err := s.ship(ctx, path); err != nil {
			pending++
			s.failed.Add(1)
			s.o.Logger.Warn("log shipping failed", "file", path, "url", s.o.URL, "err", err)
			errs = append(errs, err)
		}
	}
	s.pending.Store(int64(pending))
	return errors.Join(errs...)
}

// ship uploads, verifies, records and deletes one file.
func (s *Shipper) ship(ctx context.Context, path string) error {
	rel, err := filepath.Rel(s.o.Root, path)
	if err != nil {
		return err
	}
	key := filepath.ToSlash(rel)
	if e, ok := s.done[key]; ok {
		if st, err := os.Stat(path); err == nil && st.Size() == e.Size {
			// Shipped and recorded; a crash came before the delete.
			s.skipped.Add(1)
			return s.remove(path)
		}
	}
	size, sum, err := fileMD5(path)
	if err != nil {
		return fmt.Errorf("ship %s: %w", path, err)
	}
	e := entry{Key: key, Size: size, MD5: hex.EncodeToString(sum)}
	if ok, _ := s.verify(ctx, key, size, sum); ok {
		// Already in the bucket (a crash after upload, before the
		// manifest): record it, do not upload again.
		s.skipped.Add(1)
	} else {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = s.o.InitialBackoff, s.o.MaxBackoff
		_, err = backoff.Retry(ctx, func() (struct{}, error) {
			if err := s.upload(ctx, path, key, sum); err != nil {
				return struct{}{}, err
			}
			ok, err := s.verify(ctx, key, size, sum)
			if err == nil && !ok {
				err = fmt.Errorf("object %s does not match %s after upload", key, path)
			}
			return struct{}{}, err
		}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(s.o.MaxAttempts)), backoff.WithMaxElapsedTime(0))
		if err != nil {
			return fmt.Errorf("ship %s to %s: %w", path, s.o.URL, err)
		}
		s.uploaded.Add(1)
		s.uploadedBytes.Add(uint64(size))
		if s.o.afterWrite != nil {
			_ = s.o.afterWrite(key, true)
		}
	}
	if err := s.record(e); err != nil {
		return err
	}
	return s.remove(path)
}

// remove deletes a shipped file when DeleteAfterUpload.
func (s *Shipper) remove(path string) error {
	if !s.o.DeleteAfterUpload {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete shipped %s: %w", path, err)
	}
	s.deleted.Add(1)
	return nil
}

// chunk is the copy buffer of an upload.
const chunk = 256 << 10

// upload writes path to key with ContentMD5 set: the bucket refuses the
// object when the bytes written do not hash to sum.
func (s *Shipper) upload(ctx context.Context, path, key string, sum []byte) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return backoff.Permanent(err)
	}
	defer f.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.o.Bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentMD5: sum, ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		return err
	}
	buf := make([]byte, chunk)
	first := true
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				cancel() // abort: no object
				_ = w.Close()
				return err
			}
			if first && s.o.afterWrite != nil {
				if err := s.o.afterWrite(key, false); err != nil {
					cancel()
					_ = w.Close()
					return err
				}
			}
			first = false
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			cancel()
			_ = w.Close()
			return rerr
		}
	}
	return w.Close()
}

// verify reports whether the object key has the given size and MD5: from
// its attributes when the store reports an MD5, else by reading it back.
// A missing object is (false, nil).
func (s *Shipper) verify(ctx context.Context, key string, size int64, sum []byte) (bool, error) {
	a, err := s.o.Bucket.Attributes(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if a.Size != size {
		return false, nil
	}
	if len(a.MD5) > 0 {
		return bytes.Equal(a.MD5, sum), nil
	}
	r, err := s.o.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		return false, err
	}
	defer r.Close()
	h := md5.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return false, err
	}
	return n == size && bytes.Equal(h.Sum(nil), sum), nil
}

func fileMD5(path string) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, nil, err
	}
	return n, h.Sum(nil), nil
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	st := Stats{
		Uploaded: s.uploaded.Load(), UploadedBytes: s.uploadedBytes.Load(), Skipped: s.skipped.Load(),
		Failed: s.failed.Load(), Deleted: s.deleted.Load(), Pending: int(s.pending.Load()),
	}
	if ns := s.lastPass.Load(); ns != 0 {
		st.LastPass = time.Unix(0, ns)
	}
	return st
}

// Collectors returns the shipper's Prometheus metrics (see the package doc).
func (s *Shipper) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("routelab_logship_uploaded_files_total", "Decision-log files uploaded to the object store and verified.", &s.uploaded),
		counter("routelab_logship_uploaded_bytes_total", "Bytes of decision-log files uploaded and verified.", &s.uploadedBytes),
		counter("routelab_logship_failed_uploads_total", "Decision-log files whose upload failed after every retry of a pass (retried next pass).", &s.failed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "routelab_logship_pending_files", Help: "Finished decision-log files not yet shipped after the last pass."},
			func() float64 { return float64(s.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "routelab_logship_last_pass_timestamp_seconds", Help: "Unix time the last shipping pass ended (0: none yet)."},
			func() float64 { return float64(s.lastPass.Load()) / 1e9 }),
	}
}
