package decisionlog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/atomicfile"
)

// FullPolicy says what Log does when the queue is full.
type FullPolicy uint8

const (
	// FullDrop drops the record and counts it (Stats.Dropped): serving
	// never waits for the disk. The default.
	FullDrop FullPolicy = iota
	// FullBlock makes Log wait for room: nothing is lost, but a slow disk
	// slows the caller. For batch jobs such as the simulator.
	FullBlock
)

// String returns "drop" or "block".
func (p FullPolicy) String() string {
	switch p {
	case FullDrop:
		return "drop"
	case FullBlock:
		return "block"
	}
	return fmt.Sprintf("full_policy(%d)", uint8(p))
}

// ParseFullPolicy is the inverse of FullPolicy.String.
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "drop":
		return FullDrop, nil
	case "block":
		return FullBlock, nil
	}
	return 0, fmt.Errorf("full policy %q: want drop or block", s)
}

// Defaults of WriterOpts: the memory bound and how it is split.
const (
	// DefaultMaxMemoryRows bounds the rows a writer holds in memory.
	DefaultMaxMemoryRows = 24576
	// DefaultBatchRows is the rows per in-memory batch.
	DefaultBatchRows = 512
	// DefaultQueueBatches is the batches in circulation: at most 8,192
	// rows wait for the disk, 1.6 s of traffic at 5,000 rows/s.
	DefaultQueueBatches = 16
	// DefaultRowGroupRows is the rows per Parquet row group, buffered
	// per open file.
	DefaultRowGroupRows = 8192
)

// WriterOpts configures NewWriter and NewFeedbackWriter. Only Root is
// required; every zero value means the documented default.
//
// Memory bound: a writer holds at most MaxMemoryRows rows in memory —
// BatchRows×QueueBatches in its batches (preallocated, reused) plus
// RowGroupRows per open file (MaxOpenFiles) in parquet-go's row-group
// buffers — whatever the traffic, the file size or the rotation interval:
// with the defaults 512×16 + 8192×2 = 24,576 rows. Beside the rows, an
// open file keeps its footer metadata (column chunk statistics and page
// indexes) until it is committed: 30–40 KB per row group written, so
// at most MaxFileRows/RowGroupRows row groups per file (4–5 MB with
// the defaults). The WAL segments hold an open file's rows on disk, not
// in memory.
type WriterOpts struct {
	// Root is the log root directory; the table goes under Root/decisions
	// (or Root/feedback) in Hive partitions dt=YYYY-MM-DD/hour=HH by the
	// record's time (UTC).
	Root string
	// MaxMemoryRows bounds the rows held in memory: BatchRows×QueueBatches
	// + RowGroupRows×MaxOpenFiles must not exceed it (NewWriter says which
	// setting breaks it). The settings left zero are derived from it:
	// two thirds go to row groups (RowGroupRows = ⅔·MaxMemoryRows /
	// MaxOpenFiles), the rest to the queue (BatchRows at most 512 and a
	// quarter of it, QueueBatches what fits, at least 2). Zero means
	// DefaultMaxMemoryRows when the others are zero too, else their sum.
	MaxMemoryRows int
	// BatchRows is the number of rows per in-memory batch (default 512).
	BatchRows int
	// QueueBatches is the number of batches in circulation (default 16):
	// at most BatchRows×QueueBatches rows wait for the disk.
	QueueBatches int
	// Full is what Log does when every batch is waiting (default FullDrop).
	Full FullPolicy
	// FlushInterval hands a partly filled batch to the disk goroutine and
	// checks file ages this often (default 1s).
	FlushInterval time.Duration
	// MaxFileRows rotates a file after this many rows (default 1,000,000).
	MaxFileRows int64
	// MaxFileAge rotates a file this long after it was opened, by the wall
	// clock (default 5m), so a quiet writer still publishes its rows.
	MaxFileAge time.Duration
	// RowGroupRows bounds a Parquet row group, and so the writer's memory
	// per open file (default 8,192): an open file streams to disk one row
	// group at a time.
	RowGroupRows int64
	// MaxOpenFiles bounds the partitions open at once (default 2); the
	// least recently written is committed to make room.
	MaxOpenFiles int
	// Compression is "snappy" (default), "zstd", "gzip", "lz4" or "none".
	Compression string
	// TenantSalt keys HashTenant; keep it secret and stable. Empty leaves
	// the hash unkeyed (anyone can recompute it from a tenant name): only
	// for tests. routelab serve always sets it (gateway Config.TenantSalt:
	// privacy.tenant_salt, its environment variable, or a per-directory
	// random salt in development).
	TenantSalt string
	// WriterID goes into file names and the stats sidecar; default
	// host-pid-random, unique across replicas and restarts.
	WriterID string
	// OnCommit, optional, is called on the disk goroutine after each file
	// is renamed into place (and its directory fsynced).
	OnCommit func(CommitInfo)
	// Now is the wall clock for file names and ages (default time.Now).
	Now func() time.Time
}

// memoryBound fills MaxMemoryRows, BatchRows, QueueBatches and
// RowGroupRows (MaxOpenFiles is filled) and checks that the rows held in
// memory fit the bound.
func (o *WriterOpts) memoryBound() error {
	switch {
	case o.MaxMemoryRows < 0:
		return fmt.Errorf("writer max_memory_rows: %d must be > 0", o.MaxMemoryRows)
	case o.BatchRows < 0:
		return fmt.Errorf("writer batch_rows: %d must be > 0", o.BatchRows)
	case o.QueueBatches < 0:
		return fmt.Errorf("writer queue_batches: %d must be > 0", o.QueueBatches)
	case o.RowGroupRows < 0:
		return fmt.Errorf("writer row_group_rows: %d must be > 0", o.RowGroupRows)
	case o.MaxOpenFiles < 0:
		return fmt.Errorf("writer max_open_files: %d must be > 0", o.MaxOpenFiles)
	}
	files := int64(o.MaxOpenFiles)
	if o.MaxMemoryRows == 0 {
		if o.BatchRows == 0 {
			o.BatchRows = DefaultBatchRows
		}
		if o.QueueBatches == 0 {
			o.QueueBatches = DefaultQueueBatches
		}
		if o.RowGroupRows == 0 {
			o.RowGroupRows = DefaultRowGroupRows
		}
		o.MaxMemoryRows = o.BatchRows*o.QueueBatches + int(o.RowGroupRows*files)
		return nil
	}
	bound := int64(o.MaxMemoryRows)
	if o.RowGroupRows == 0 {
		o.RowGroupRows = max(1, bound*2/(3*files))
	}
	rest := bound - o.RowGroupRows*files
	if o.BatchRows == 0 {
		o.BatchRows = int(max(1, min(DefaultBatchRows, rest/4)))
	}
	if o.QueueBatches == 0 {
		o.QueueBatches = int(max(2, rest/int64(o.BatchRows)))
	}
	if held := int64(o.BatchRows*o.QueueBatches) + o.RowGroupRows*files; held > bound {
		return fmt.Errorf("writer max_memory_rows: %d rows is less than batch_rows %d × queue_batches %d + row_group_rows %d × max_open_files %d = %d",
			bound, o.BatchRows, o.QueueBatches, o.RowGroupRows, files, held)
	}
	return nil
}

// CommitInfo describes one finished file.
type CommitInfo struct {
	Path string
	Rows int64
	// TotalRows is the writer's committed row count including this file.
	TotalRows uint64
}

// Stats are a writer's counters, for metrics. All are totals since the
// writer was created, except QueueDepth and OpenFiles.
type Stats struct {
	// Enqueued rows were accepted by Log.
	Enqueued uint64 `json:"enqueued"`
	// Dropped rows were refused by Log: queue full (FullDrop) or writer closed.
	Dropped uint64 `json:"dropped"`
	// Committed rows are in finished, renamed files.
	Committed uint64 `json:"committed"`
	// Failed rows were lost to an I/O error (see Err).
	Failed uint64 `json:"failed"`
	// Files is the number of finished files.
	Files uint64 `json:"files"`
	// DroppedClosed rows were logged after Close began (a drain that
	// ended before its requests did); they are included in Dropped.
	DroppedClosed uint64 `json:"dropped_closed"`
	// Recovered rows were read back at start-up from RecoveredSegments
	// WAL segments left by dead writers and committed as Parquet files.
	Recovered         uint64 `json:"recovered"`
	RecoveredSegments uint64 `json:"recovered_segments"`
	// TornRecords WAL records were cut at recovery (incomplete or failing
	// their checksum: the rows of at most the last fsync interval of a
	// crashed writer); TornBytes is their size.
	TornRecords uint64 `json:"torn_records"`
	TornBytes   uint64 `json:"torn_bytes"`
	// OrphanTmp .tmp files without a WAL segment were removed at start-up
	// (left by a writer older than the WAL, or by a crash at creation).
	OrphanTmp uint64 `json:"orphan_tmp"`
	// QueueDepth is the number of rows logged but not yet encoded.
	QueueDepth int `json:"queue_depth"`
	// OpenFiles is the number of .tmp files being written.
	OpenFiles int `json:"open_files"`
}

// WriterStatsFile is the sidecar a writer keeps under Root/_stats, so the
// drop count survives the process: `routelab logs inspect` sums them.
type WriterStatsFile struct {
	WriterID string    `json:"writer_id"`
	Table    string    `json:"table"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Closed   bool      `json:"closed"`
	Stats
}

func (o *WriterOpts) defaults() error {
	if o.Root == "" {
		return fmt.Errorf("writer root: empty directory")
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxFileRows == 0 {
		o.MaxFileRows = 1_000_000
	}
	if o.MaxFileAge == 0 {
		o.MaxFileAge = 5 * time.Minute
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = 2
	}
	if o.Compression == "" {
		o.Compression = "snappy"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.memoryBound(); err != nil {
		return err
	}
	switch {
	case o.BatchRows < 0:
		return fmt.Errorf("writer batch_rows: %d must be > 0", o.BatchRows)
	case o.QueueBatches < 0:
		return fmt.Errorf("writer queue_batches: %d must be > 0", o.QueueBatches)
	case o.FlushInterval < 0:
		return fmt.Errorf("writer flush_interval: %v must be > 0", o.FlushInterval)
	case o.MaxFileRows < 0:
		return fmt.Errorf("writer max_file_rows: %d must be > 0", o.MaxFileRows)
	case o.MaxFileAge < 0:
		return fmt.Errorf("writer max_file_age: %v must be > 0", o.MaxFileAge)
	case o.RowGroupRows < 0:
		return fmt.Errorf("writer row_group_rows: %d must be > 0", o.RowGroupRows)
	case o.MaxOpenFiles < 0:
		return fmt.Errorf("writer max_open_files: %d must be > 0", o.MaxOpenFiles)
	case o.Full != FullDrop && o.Full != FullBlock:
		return fmt.Errorf("writer full policy: %v unknown", o.Full)
	}
	if _, err := codecOf(o.Compression); err != nil {
		return err
	}
	if o.WriterID == "" {
		id, err := newWriterID()
		if err != nil {
			return err
		}
		o.WriterID = id
	}
	if strings.ContainsAny(o.WriterID, `/\`) {
		return fmt.Errorf("writer id %q: must not contain a path separator", o.WriterID)
	}
	return nil
}

func codecOf(name string) (compress.Codec, error) {
	switch name {
	case "snappy":
		return &parquet.Snappy, nil
	case "zstd":
		return &parquet.Zstd, nil
	case "gzip":
		return &parquet.Gzip, nil
	case "lz4":
		return &parquet.Lz4Raw, nil
	case "none":
		return &parquet.Uncompressed, nil
	}
	return nil, fmt.Errorf("writer compression %q: want snappy, zstd, gzip, lz4 or none", name)
}

func newWriterID() (string, error) {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' {
			return r
		}
		return '_'
	}, host)
	if host == "" {
		host = "host"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("writer id: %w", err)
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// Writer is the decisions table writer: a route.Sink whose Log copies the
// record into a preallocated row and returns; a goroutine writes batches
// to Parquet. Safe for concurrent use.
type Writer struct {
	p    *pipeline[Row]
	salt string
	// tenant hash cache, used only by the disk goroutine.
	tenants map[string]string
}

// NewWriter starts a decisions writer under o.Root/decisions.
func NewWriter(o WriterOpts) (*Writer, error) {
	w := &Writer{salt: o.TenantSalt, tenants: map[string]string{}}
	p, err := newPipeline[Row](o, TableDecisions, "dec", func(r *Row) int64 { return r.Time }, w.prepare, rowCodec{})
	if err != nil {
		return nil, err
	}
	w.p = p
	return w, nil
}

// prepare runs on the disk goroutine before a row is written.
func (w *Writer) prepare(r *Row) {
	if r.rawTenant == "" {
		r.Tenant = ""
		return
	}
	h, ok := w.tenants[r.rawTenant]
	if !ok {
		if len(w.tenants) >= 4096 {
			clear(w.tenants)
		}
		h = HashTenant(w.salt, r.rawTenant)
		w.tenants[r.rawTenant] = h
	}
	r.Tenant = h
}

// Log copies rec into the queue and returns without I/O. When the queue
// is full it drops the record (counted) or waits, as WriterOpts.Full says.
// It keeps no reference to rec.
func (w *Writer) Log(rec *decision.Record) {
	if r, b := w.p.acquire(); r != nil {
		r.fill(rec)
		w.p.release(b)
	}
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats { return w.p.stats() }

// Dropped returns the number of records Log refused.
func (w *Writer) Dropped() uint64 { return w.p.dropped.Load() }

// Err returns the first I/O error the disk goroutine met, if any.
func (w *Writer) Err() error { return w.p.err() }

// Close flushes every queued row, finishes all files and stops the disk
// goroutine: when it returns, every row Log accepted is counted as
// Committed or Failed. Log calls after Close began are dropped and counted
// (Dropped, DroppedClosed) — also in the stats sidecar, which such a call
// rewrites synchronously. It returns the first I/O error met during the
// writer's life.
func (w *Writer) Close() error { return w.p.close() }

// FeedbackWriter writes delayed feedback to Root/feedback, the same way
// Writer writes decisions. Safe for concurrent use.
type FeedbackWriter struct {
	p *pipeline[FeedbackRow]
}

// NewFeedbackWriter starts a feedback writer under o.Root/feedback.
func NewFeedbackWriter(o WriterOpts) (*FeedbackWriter, error) {
	p, err := newPipeline[FeedbackRow](o, TableFeedback, "fb", func(r *FeedbackRow) int64 { return r.Time }, nil, feedbackCodec{})
	if err != nil {
		return nil, err
	}
	return &FeedbackWriter{p: p}, nil
}

// Log validates f and queues it; like Writer.Log it never does I/O.
func (w *FeedbackWriter) Log(f *Feedback) error {
	if err := f.Validate(); err != nil {
		return err
	}
	r, b := w.p.acquire()
	if r == nil {
		return fmt.Errorf("feedback %q: dropped (queue full or writer closed)", f.RequestID)
	}
	r.fill(f)
	w.p.release(b)
	return nil
}

// Stats returns the writer's counters.
func (w *FeedbackWriter) Stats() Stats { return w.p.stats() }

// Err returns the first I/O error met, if any.
func (w *FeedbackWriter) Err() error { return w.p.err() }

// Close flushes and finishes everything; see Writer.Close.
func (w *FeedbackWriter) Close() error { return w.p.close() }

// batch is a reusable block of rows; rows[:n] are reserved (under
// pipeline.mu) and, once the batch reaches the disk goroutine, filled.
type batch[R any] struct {
	rows []R
	n    int
	// state counts the callers filling a reserved row (outside
	// pipeline.mu), plus sealed once the batch stops taking rows. Whoever
	// moves it to exactly sealed — the sealer when no row is being filled,
	// else the last filler — hands the batch to the disk goroutine.
	state atomic.Int64
}

// sealed is batch.state's flag: the batch takes no more rows.
const sealed = 1 << 40

// pipeline is the table-independent writer: caller-side batching, the
// disk goroutine, partitioned files, rotation and commit.
type pipeline[R any] struct {
	o       WriterOpts
	table   string
	prefix  string
	dir     string // Root/table
	timeOf  func(*R) int64
	prepare func(*R)
	codec   compress.Codec
	started time.Time

	walCodec    walCodec[R]
	parquetOpts []parquet.WriterOption

	mu     sync.Mutex
	cur    *batch[R]
	closed bool
	// filling counts rows reserved and not yet released, so that close
	// waits for them before the disk goroutine drains the queue.
	filling sync.WaitGroup
	free    chan *batch[R]
	full    chan *batch[R]
	queued  atomic.Int64 // rows in full batches

	closing chan struct{}
	done    chan struct{}

	enqueued, dropped, committed, failed, files atomic.Uint64
	droppedClosed                               atomic.Uint64
	recovered, recoveredSegs, tornRecords       atomic.Uint64
	tornBytes, orphanTmp                        atomic.Uint64
	openFiles                                   atomic.Int64

	// sidecarMu serialises sidecar writes; finalSidecar is set once the
	// disk goroutine wrote the closing sidecar (later drops rewrite it).
	sidecarMu    sync.Mutex
	finalSidecar bool
	lastSidecar  Stats

	errMu    sync.Mutex
	firstErr error

	// discard makes the disk goroutine recycle batches unwritten; set only
	// by benchmarks of the caller's side, before the first Log.
	discard bool

	// Owned by the disk goroutine.
	open    []*partFile[R]
	spare   []*parquet.GenericWriter[R]
	seq     uint64
	useTick uint64
	walBuf  []byte
	// lastSync is when the WAL segments were last fsynced.
	lastSync time.Time
}

// partFile is one open .tmp file of one hour partition.
type partFile[R any] struct {
	hour    int64 // hours since the epoch
	f       *os.File
	w       *parquet.GenericWriter[R]
	tmp     string
	final   string
	rows    int64
	opened  time.Time
	lastUse uint64
	// wal is the open file's write-ahead segment (final + walSuffix),
	// locked while the file is open; walDirty: appended since last fsync.
	wal      *os.File
	walPath  string
	walDirty bool
}

func newPipeline[R any](o WriterOpts, table, prefix string, timeOf func(*R) int64, prepare func(*R), wc walCodec[R]) (*pipeline[R], error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	codec, _ := codecOf(o.Compression)
	p := &pipeline[R]{
		o: o, table: table, prefix: prefix,
		dir:    filepath.Join(o.Root, table),
		timeOf: timeOf, prepare: prepare, codec: codec,
		started:  o.Now(),
		walCodec: wc,
		parquetOpts: []parquet.WriterOption{
			parquet.Compression(codec),
			parquet.MaxRowsPerRowGroup(o.RowGroupRows),
			parquet.CreatedBy("routelab", strconv.Itoa(SchemaVersion), ""),
			parquet.KeyValueMetadata(MetaTable, table),
			parquet.KeyValueMetadata(MetaSchemaVersion, strconv.Itoa(SchemaVersion)),
			parquet.KeyValueMetadata(MetaWriterID, o.WriterID),
		},
		free:    make(chan *batch[R], o.QueueBatches),
		full:    make(chan *batch[R], o.QueueBatches),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("writer root %q: %w", o.Root, err)
	}
	for range o.QueueBatches {
		p.free <- &batch[R]{rows: make([]R, o.BatchRows)}
	}
	if err := p.recoverDir(); err != nil {
		return nil, err
	}
	go p.run()
	return p, nil
}

// acquire reserves the next row slot of the current batch and returns it
// with its batch, or nil (record dropped). The caller fills the row
// without holding any lock — callers fill their rows in parallel, and one
// that is descheduled mid-fill holds up nobody — then calls release.
func (p *pipeline[R]) acquire() (*R, *batch[R]) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			p.dropped.Add(1)
			p.droppedClosed.Add(1)
			p.lateDropSidecar()
			return nil, nil
		}
		if b := p.cur; b != nil {
			r := &b.rows[b.n]
			b.n++
			b.state.Add(1)
			p.filling.Add(1)
			if b.n == len(b.rows) {
				p.sealLocked()
			}
			p.mu.Unlock()
			return r, b
		}
		select {
		case b := <-p.free:
			p.cur = b
			continue
		default:
		}
		if p.o.Full == FullDrop {
			p.mu.Unlock()
			p.dropped.Add(1)
			return nil, nil
		}
		// Wait without the lock: the disk goroutine needs it to hand over
		// partial batches.
		p.mu.Unlock()
		select {
		case b := <-p.free:
			p.mu.Lock()
			if p.cur == nil && !p.closed {
				p.cur = b
			} else {
				p.free <- b // cannot block: free holds every batch
			}
		case <-p.closing:
			p.mu.Lock()
		}
	}
}

// release publishes a row filled after acquire; the last row filled of a
// sealed batch hands it to the disk goroutine.
func (p *pipeline[R]) release(b *batch[R]) {
	p.enqueued.Add(1)
	if b.state.Add(-1) == sealed {
		p.handoff(b)
	}
	p.filling.Done()
}

// sealLocked stops the current batch taking rows (p.mu held) and hands it
// to the disk goroutine, at once when none of its rows is being filled,
// else from the last release.
func (p *pipeline[R]) sealLocked() {
	b := p.cur
	if b == nil || b.n == 0 {
		return
	}
	p.cur = nil
	if b.state.Add(sealed) == sealed {
		p.handoff(b)
	}
}

// handoff queues a sealed, completely filled batch for the disk goroutine.
func (p *pipeline[R]) handoff(b *batch[R]) {
	b.state.Store(0)
	p.queued.Add(int64(b.n))
	p.full <- b // cannot block: full has room for every batch
}

func (p *pipeline[R]) stats() Stats {
	s := Stats{
		Enqueued:          p.enqueued.Load(),
		Dropped:           p.dropped.Load(),
		Committed:         p.committed.Load(),
		Failed:            p.failed.Load(),
		Files:             p.files.Load(),
		DroppedClosed:     p.droppedClosed.Load(),
		Recovered:         p.recovered.Load(),
		RecoveredSegments: p.recoveredSegs.Load(),
		TornRecords:       p.tornRecords.Load(),
		TornBytes:         p.tornBytes.Load(),
		OrphanTmp:         p.orphanTmp.Load(),
		QueueDepth:        int(p.queued.Load()),
		OpenFiles:         int(p.openFiles.Load()),
	}
	p.mu.Lock()
	if p.cur != nil {
		s.QueueDepth += p.cur.n
	}
	p.mu.Unlock()
	return s
}

func (p *pipeline[R]) setErr(err error) {
	p.errMu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.errMu.Unlock()
}

func (p *pipeline[R]) err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

func (p *pipeline[R]) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return p.err()
	}
	p.closed = true
	p.sealLocked()
	p.mu.Unlock()
	// Rows reserved before close are released (and their batch handed
	// off) before the disk goroutine drains the queue.
	p.filling.Wait()
	close(p.closing)
	<-p.done
	return p.err()
}

// run is the disk goroutine.
func (p *pipeline[R]) run() {
	defer close(p.done)
	tick := time.NewTicker(p.o.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case b := <-p.full:
			p.writeBatch(b)
		case <-tick.C:
			p.mu.Lock()
			p.sealLocked()
			p.mu.Unlock()
			p.rotateAged()
			p.refreshSidecar()
		case <-p.closing:
			// Every batch filled before close is already in p.full.
			for {
				select {
				case b := <-p.full:
					p.writeBatch(b)
					continue
				default:
				}
				break
			}
			for len(p.open) > 0 {
				p.commit(p.open[0])
			}
			p.sidecarMu.Lock()
			p.writeSidecarLocked(true)
			p.finalSidecar = true
			p.sidecarMu.Unlock()
			return
		}
	}
}

func (p *pipeline[R]) writeBatch(b *batch[R]) {
	rows := b.rows[:b.n]
	if p.discard {
		rows = nil
	}
	if p.prepare != nil {
		for i := range rows {
			p.prepare(&rows[i])
		}
	}
	for len(rows) > 0 {
		h := hourOf(p.timeOf(&rows[0]))
		j := 1
		for j < len(rows) && hourOf(p.timeOf(&rows[j])) == h {
			j++
		}
		p.writeRun(h, rows[:j])
		rows = rows[j:]
	}
	// Group commit: fsync when the disk goroutine has caught up, or at
	// least every half FlushInterval while batches keep coming (a fast
	// FullBlock producer, such as the simulator, would otherwise wait for
	// one fsync per batch).
	if len(p.full) == 0 || time.Since(p.lastSync) >= p.o.FlushInterval/2 {
		p.syncWALs()
	}
	p.queued.Add(-int64(b.n))
	b.n = 0
	p.free <- b
}

// syncWALs fsyncs the WAL segments appended to since the last call: from
// here on those rows survive a crash.
func (p *pipeline[R]) syncWALs() {
	p.lastSync = time.Now()
	for _, pf := range p.open {
		if !pf.walDirty {
			continue
		}
		pf.walDirty = false
		if err := pf.wal.Sync(); err != nil {
			p.setErr(fmt.Errorf("wal %s: sync: %w", pf.walPath, err))
		}
	}
}

// hourOf returns the hour partition (hours since the epoch) of a µs time.
func hourOf(us int64) int64 {
	const usPerHour = int64(time.Hour / time.Microsecond)
	h := us / usPerHour
	if us%usPerHour < 0 {
		h--
	}
	return h
}

// writeRun writes rows of one hour partition, rotating by row count.
func (p *pipeline[R]) writeRun(hour int64, rows []R) {
	for len(rows) > 0 {
		pf, err := p.fileFor(hour)
		if err != nil {
			p.fail(err, len(rows))
			return
		}
		n := min(int64(len(rows)), p.o.MaxFileRows-pf.rows)
		if !p.discard {
			p.walBuf = encodeRecord(p.walCodec, p.walBuf, rows[:n])
			if _, err := pf.wal.Write(p.walBuf); err != nil {
				p.setErr(fmt.Errorf("wal %s: %w", pf.walPath, err))
			}
			pf.walDirty = true
		}
		if _, err := pf.w.Write(rows[:n]); err != nil {
			p.fail(fmt.Errorf("write %s: %w", pf.tmp, err), len(rows))
			p.abandon(pf)
			return
		}
		pf.rows += n
		rows = rows[n:]
		if pf.rows >= p.o.MaxFileRows {
			p.commit(pf)
		}
	}
}

func (p *pipeline[R]) fail(err error, rows int) {
	p.setErr(err)
	p.failed.Add(uint64(rows))
}

// fileFor returns the open file of hour, opening one (and committing the
// least recently used file when too many are open).
func (p *pipeline[R]) fileFor(hour int64) (*partFile[R], error) {
	p.useTick++
	for _, pf := range p.open {
		if pf.hour == hour {
			pf.lastUse = p.useTick
			return pf, nil
		}
	}
	if len(p.open) >= p.o.MaxOpenFiles {
		lru := p.open[0]
		for _, pf := range p.open[1:] {
			if pf.lastUse < lru.lastUse {
				lru = pf
			}
		}
		p.commit(lru)
	}
	t := time.Unix(hour*3600, 0).UTC()
	dir := filepath.Join(p.dir, "dt="+t.Format("2006-01-02"), "hour="+t.Format("15"))
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("partition %s: %w", dir, err)
		}
		// Make the new directories' entries durable too.
		for _, d := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
			if err := atomicfile.SyncDir(d); err != nil {
				return nil, fmt.Errorf("partition %s: %w", dir, err)
			}
		}
	}
	now := p.o.Now()
	p.seq++
	name := fmt.Sprintf("%s-%s-%s-%06d.parquet", p.prefix, now.UTC().Format("20060102T150405.000Z"), p.o.WriterID, p.seq)
	final := filepath.Join(dir, name)
	tmp := final + ".tmp"
	// The WAL segment first, locked: recovery leaves a locked segment and
	// its .tmp alone, and removes a .tmp only when it has no segment.
	// It is created under a name recovery ignores and renamed once locked,
	// so a writer starting meanwhile never sees it unlocked.
	walPath := final + walSuffix
	newPath := walPath + walNewSuffix
	wal, err := os.OpenFile(newPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", newPath, err)
	}
	if err := lock(wal); err != nil {
		wal.Close()
		os.Remove(newPath)
		return nil, fmt.Errorf("lock %s: %w", newPath, err)
	}
	if _, err := wal.WriteString(walMagic); err == nil {
		err = os.Rename(newPath, walPath)
	}
	if err != nil {
		wal.Close()
		os.Remove(newPath)
		return nil, fmt.Errorf("create %s: %w", walPath, err)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		wal.Close()
		os.Remove(walPath)
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		wal.Close()
		f.Close()
		os.Remove(walPath)
		os.Remove(tmp)
		return nil, fmt.Errorf("create %s: sync dir: %w", walPath, err)
	}
	var w *parquet.GenericWriter[R]
	if n := len(p.spare); n > 0 {
		w, p.spare = p.spare[n-1], p.spare[:n-1]
		w.Reset(f)
	} else {
		w = p.newParquetWriter(f)
	}
	pf := &partFile[R]{hour: hour, f: f, w: w, tmp: tmp, final: final, opened: now, lastUse: p.useTick, wal: wal, walPath: walPath}
	p.open = append(p.open, pf)
	p.openFiles.Store(int64(len(p.open)))
	return pf, nil
}

func (p *pipeline[R]) remove(pf *partFile[R]) {
	for i, q := range p.open {
		if q == pf {
			p.open = append(p.open[:i], p.open[i+1:]...)
			break
		}
	}
	p.openFiles.Store(int64(len(p.open)))
}

// abandon closes a broken file and leaves the .tmp and its WAL segment
// behind (readers skip the .tmp); the next writer to start on the root
// recovers the segment's rows.
func (p *pipeline[R]) abandon(pf *partFile[R]) {
	p.remove(pf)
	pf.f.Close()
	pf.wal.Close()
}

// commit finishes pf: Parquet footer, fsync, close, rename, fsync the
// directory. A reader never sees the file before it is complete.
func (p *pipeline[R]) commit(pf *partFile[R]) {
	p.remove(pf)
	err := pf.w.Close()
	if err == nil {
		err = pf.f.Sync()
	}
	if cerr := pf.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(pf.tmp, pf.final)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(pf.final))
	}
	if err != nil {
		// The segment stays: the next writer started on the root recovers it.
		pf.wal.Close()
		p.fail(fmt.Errorf("commit %s: %w", pf.final, err), int(pf.rows))
		return
	}
	// The rows are durable in the committed file: drop the segment.
	pf.wal.Close()
	if err := os.Remove(pf.walPath); err != nil {
		p.setErr(fmt.Errorf("commit %s: remove wal: %w", pf.final, err))
	}
	p.spare = append(p.spare, pf.w)
	total := p.committed.Add(uint64(pf.rows))
	p.files.Add(1)
	p.writeSidecar(false)
	if p.o.OnCommit != nil {
		p.o.OnCommit(CommitInfo{Path: pf.final, Rows: pf.rows, TotalRows: total})
	}
}

func (p *pipeline[R]) rotateAged() {
	now := p.o.Now()
	for i := 0; i < len(p.open); {
		if pf := p.open[i]; now.Sub(pf.opened) >= p.o.MaxFileAge {
			p.commit(pf)
			continue
		}
		i++
	}
}

// writeSidecar records the counters in Root/_stats/<table>-<writer>.json
// (write to .tmp, rename), so drop counts outlive the process.
func (p *pipeline[R]) writeSidecar(closed bool) {
	p.sidecarMu.Lock()
	p.writeSidecarLocked(closed)
	p.sidecarMu.Unlock()
}

// refreshSidecar rewrites the sidecar if a counter changed since the last
// write (queue depth aside), so a live writer's drops are visible within
// a FlushInterval.
func (p *pipeline[R]) refreshSidecar() {
	s := p.stats()
	s.QueueDepth, s.OpenFiles = 0, 0
	p.sidecarMu.Lock()
	if s != p.lastSidecar {
		p.writeSidecarLocked(false)
	}
	p.sidecarMu.Unlock()
}

// lateDropSidecar runs on the caller of Log after Close: once the closing
// sidecar is written, each late drop rewrites it, so the count is on disk
// even if the process exits right after.
func (p *pipeline[R]) lateDropSidecar() {
	p.sidecarMu.Lock()
	if p.finalSidecar {
		p.writeSidecarLocked(true)
	}
	p.sidecarMu.Unlock()
}

func (p *pipeline[R]) writeSidecarLocked(closed bool) {
	dir := filepath.Join(p.o.Root, StatsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.setErr(fmt.Errorf("stats dir %s: %w", dir, err))
		return
	}
	s := WriterStatsFile{WriterID: p.o.WriterID, Table: p.table, Started: p.started.UTC(), Updated: p.o.Now().UTC(), Closed: closed, Stats: p.stats()}
	p.lastSidecar = s.Stats
	p.lastSidecar.QueueDepth, p.lastSidecar.OpenFiles = 0, 0
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		p.setErr(fmt.Errorf("stats sidecar: %w", err))
		return
	}
	path := filepath.Join(dir, p.table+"-"+p.o.WriterID+".json")
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		p.setErr(fmt.Errorf("stats sidecar %s: %w", path, err))
		return
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		p.setErr(fmt.Errorf("stats sidecar %s: %w", path, err))
	}
}
