package decisionlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
)

// The write-ahead segment (WAL) of an open Parquet file.
//
// A Parquet file is unreadable until its footer is written, so each open
// file name.parquet.tmp has a companion name.parquet.wal holding the same
// rows in a simple append-only format that is readable at any moment:
//
//	segment = magic record*
//	magic   = "RLWAL01\n"
//	record  = len:uint32le crc:uint32le payload[len]
//	payload = rows:uvarint row*         (crc is CRC-32C of payload)
//
// Rows use a hand-written binary codec (varints, length-prefixed strings,
// little-endian float64s; see appendRow). The disk goroutine appends one
// record per run of rows it writes to the file and fsyncs the segment
// before taking the next batch. A record cut short by a crash (or whose
// checksum does not match) ends the segment: readers and recovery stop
// there and count it as torn.

const walMagic = "RLWAL01\n"

// walSuffix is appended to a Parquet file's final name; walNewSuffix to
// that while the segment is being created (before it is locked).
const (
	walSuffix    = ".wal"
	walNewSuffix = ".new"
)

// walMaxRecord bounds one record's payload: a larger length is corruption.
const walMaxRecord = 1 << 30

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// walCodec encodes and decodes one table's rows.
type walCodec[R any] interface {
	appendRow(dst []byte, r *R) []byte
	decodeRow(d *walDecoder, r *R)
}

// sealRecord frames payload (whose first walHeader bytes are reserved
// for the header) as a record in place and returns it.
func sealRecord(buf []byte) []byte {
	payload := buf[walHeader:]
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(payload, crc32c))
	return buf
}

const walHeader = 8

// encodeRecord returns a sealed record of rows, reusing buf.
func encodeRecord[R any](c walCodec[R], buf []byte, rows []R) []byte {
	buf = append(buf[:0], make([]byte, walHeader)...)
	buf = binary.AppendUvarint(buf, uint64(len(rows)))
	for i := range rows {
		buf = c.appendRow(buf, &rows[i])
	}
	return sealRecord(buf)
}

// SegmentStats describe what was read from one WAL segment.
type SegmentStats struct {
	// Records and Rows complete and intact.
	Records, Rows int64
	// Torn is true when the segment ended in an incomplete or corrupt
	// record (cut there); TornBytes is how many bytes were ignored.
	Torn      bool
	TornBytes int64
}

// walScanner reads the complete records of a segment.
type walScanner struct {
	r       *bufio.Reader
	size    int64 // bytes of the segment (its size when opened)
	off     int64
	payload []byte
	stats   SegmentStats
	err     error // why scanning stopped early (torn / corrupt), for messages
}

// newWALScanner checks the magic of a segment of size bytes.
func newWALScanner(r io.Reader, size int64) (*walScanner, error) {
	s := &walScanner{r: bufio.NewReaderSize(r, int(min(max(size, 16), 64<<10))), size: size}
	var m [len(walMagic)]byte
	if size < int64(len(m)) {
		// A segment is created with its magic in one write; shorter means
		// it was cut while being created: empty.
		s.stats.Torn = size > 0
		s.stats.TornBytes = size
		s.off = size
		return s, nil
	}
	if _, err := io.ReadFull(s.r, m[:]); err != nil {
		return nil, fmt.Errorf("wal segment: read magic: %w", err)
	}
	if string(m[:]) != walMagic {
		return nil, fmt.Errorf("wal segment: bad magic %q", m[:])
	}
	s.off = int64(len(m))
	return s, nil
}

// next returns the next intact record's payload (valid until the next
// call) and false at the end of the complete records.
func (s *walScanner) next() ([]byte, bool) {
	if s.off == s.size || s.stats.Torn {
		return nil, false
	}
	cut := func(err error) ([]byte, bool) {
		s.stats.Torn = true
		s.stats.TornBytes = s.size - s.off
		s.err = err
		return nil, false
	}
	if s.size-s.off < walHeader {
		return cut(fmt.Errorf("torn record header at byte %d", s.off))
	}
	var h [walHeader]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		return cut(fmt.Errorf("read record header at byte %d: %w", s.off, err))
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	sum := binary.LittleEndian.Uint32(h[4:8])
	if n > walMaxRecord || n > s.size-s.off-walHeader {
		return cut(fmt.Errorf("record at byte %d: length %d past the end", s.off, n))
	}
	if int64(cap(s.payload)) < n {
		s.payload = make([]byte, n)
	}
	p := s.payload[:n]
	if _, err := io.ReadFull(s.r, p); err != nil {
		return cut(fmt.Errorf("read record at byte %d: %w", s.off, err))
	}
	if crc32.Checksum(p, crc32c) != sum {
		return cut(fmt.Errorf("record at byte %d: checksum mismatch", s.off))
	}
	s.off += walHeader + n
	s.stats.Records++
	return p, true
}

// scanSegment calls fn with each intact record's rows, decoded into buf
// (reused; fn must not keep it beyond the call), until the records end
// or fn returns false. A record whose rows do not decode ends the
// segment like a torn one. It returns what it read and whether fn asked
// to stop.
func scanSegment[R any](c walCodec[R], r io.Reader, size int64, buf []R, fn func([]R) bool) (SegmentStats, bool, error) {
	s, err := newWALScanner(r, size)
	if err != nil {
		return SegmentStats{}, true, err
	}
	var d walDecoder
	for {
		p, ok := s.next()
		if !ok {
			return s.stats, true, nil
		}
		d.reset(p)
		n := d.count(1)
		if d.err != nil {
			s.cutDecoded(d.err, int64(len(p)))
			return s.stats, true, nil
		}
		// Decode in chunks of len(buf) rows; a bad row cuts the record
		// (rows before it in the record are kept: they are intact).
		for n > 0 {
			k := min(n, len(buf))
			for i := range k {
				c.decodeRow(&d, &buf[i])
				if d.err != nil {
					s.cutDecoded(d.err, int64(len(p)))
					if i > 0 && !fn(buf[:i]) {
						return s.stats, false, nil
					}
					s.stats.Rows += int64(i)
					return s.stats, true, nil
				}
			}
			s.stats.Rows += int64(k)
			if !fn(buf[:k]) {
				return s.stats, false, nil
			}
			n -= k
		}
		if d.off != len(p) {
			s.cutDecoded(fmt.Errorf("%d trailing bytes", len(p)-d.off), int64(len(p)))
			return s.stats, true, nil
		}
	}
}

// cutDecoded marks the last record (of n payload bytes) as corrupt.
func (s *walScanner) cutDecoded(err error, n int64) {
	s.stats.Records--
	s.stats.Torn = true
	s.stats.TornBytes = s.size - s.off + walHeader + n
	s.err = err
}

// readSegmentFile scans the WAL segment at path; see scanSegment.
func readSegmentFile[R any](c walCodec[R], path string, buf []R, fn func([]R) bool) (SegmentStats, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentStats{}, true, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return SegmentStats{}, true, err
	}
	return scanSegment(c, f, st.Size(), buf, fn)
}

// walDecoder reads the primitive values of a record; the first error
// sticks and every later read returns zero values.
type walDecoder struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("record ends mid-row")

func (d *walDecoder) reset(b []byte) { *d = walDecoder{b: b} }

func (d *walDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *walDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.off += n
	return v
}

func (d *walDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.off += n
	return v
}

func (d *walDecoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("int32 value %d out of range", v))
		return 0
	}
	return int32(v)
}

func (d *walDecoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.fail(errShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return v
}

func (d *walDecoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(errShort)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

// count reads a length whose elements take at least minSize bytes each,
// so a corrupt length cannot make the caller allocate more than the
// record holds.
func (d *walDecoder) count(minSize int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(len(d.b)-d.off)/uint64(minSize) {
		d.fail(fmt.Errorf("count %d exceeds the record", v))
		return 0
	}
	return int(v)
}

func (d *walDecoder) str() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *walDecoder) strs(dst []string) []string {
	n := d.count(1)
	dst = dst[:0]
	for range n {
		dst = append(dst, d.str())
	}
	return dst
}

func (d *walDecoder) floats(dst []float64) []float64 {
	n := d.count(8)
	dst = dst[:0]
	for range n {
		dst = append(dst, d.float())
	}
	return dst
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendFloats(b []byte, vs []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = appendFloat(b, v)
	}
	return b
}

// Presence bits of a decision row's optional columns.
const (
	hasRequestTime = 1 << iota
	hasShadowPolicy
	hasShadowArm
	hasShadowProb
	hasShadowLoggedProb
	hasQuality
)

// rowCodec is the WAL codec of the decisions table. Rows are encoded
// after the tenant is hashed: the raw tenant never reaches the disk.
type rowCodec struct{}

func (rowCodec) appendRow(b []byte, r *Row) []byte {
	var flags byte
	if r.RequestTime != nil {
		flags |= hasRequestTime
	}
	if r.ShadowPolicy != nil {
		flags |= hasShadowPolicy
	}
	if r.ShadowArm != nil {
		flags |= hasShadowArm
	}
	if r.ShadowProb != nil {
		flags |= hasShadowProb
	}
	if r.ShadowLoggedProb != nil {
		flags |= hasShadowLoggedProb
	}
	if r.Quality != nil {
		flags |= hasQuality
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(r.SchemaVersion))
	b = binary.AppendVarint(b, r.Time)
	b = appendStr(b, r.RequestID)
	b = appendStr(b, r.Tenant)
	b = appendStr(b, r.Task)
	b = binary.AppendVarint(b, r.PromptTokens)
	if r.RequestTime != nil {
		b = binary.AppendVarint(b, *r.RequestTime)
	}
	b = binary.AppendVarint(b, int64(r.HourOfDay))
	b = appendStrs(b, r.Tags)
	b = appendFloats(b, r.Vector)
	b = appendStrs(b, r.Candidates)
	b = appendFloats(b, r.Probs)
	b = binary.AppendVarint(b, int64(r.ChosenIndex))
	b = appendStr(b, r.ChosenArm)
	b = appendFloat(b, r.ChosenProb)
	b = appendStr(b, r.Policy)
	b = appendStr(b, r.PolicyVersion)
	b = appendStr(b, r.Reason)
	if r.ShadowPolicy != nil {
		b = appendStr(b, *r.ShadowPolicy)
	}
	if r.ShadowArm != nil {
		b = appendStr(b, *r.ShadowArm)
	}
	if r.ShadowProb != nil {
		b = appendFloat(b, *r.ShadowProb)
	}
	if r.ShadowLoggedProb != nil {
		b = appendFloat(b, *r.ShadowLoggedProb)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Attempts)))
	for i := range r.Attempts {
		a := &r.Attempts[i]
		b = appendStr(b, a.Arm)
		b = appendStr(b, a.Status)
		b = appendFloat(b, a.LatencyMS)
		b = binary.AppendVarint(b, int64(a.Fallback))
	}
	b = appendStr(b, r.FinalArm)
	b = appendStr(b, r.Status)
	b = appendFloat(b, r.LatencyMS)
	b = appendFloat(b, r.TTFTMS)
	b = binary.AppendVarint(b, r.TokensIn)
	b = binary.AppendVarint(b, r.TokensOut)
	b = appendFloat(b, r.Cost)
	if r.Quality != nil {
		b = appendFloat(b, *r.Quality)
	}
	b = appendFloat(b, r.Reward)
	return appendStr(b, r.RewardSource)
}

func (rowCodec) decodeRow(d *walDecoder, r *Row) {
	flags := d.byte1()
	r.SchemaVersion = d.int32()
	r.Time = d.varint()
	r.RequestID = d.str()
	r.Tenant = d.str()
	r.rawTenant = ""
	r.Task = d.str()
	r.PromptTokens = d.varint()
	r.RequestTime = nil
	if flags&hasRequestTime != 0 {
		r.reqTime = d.varint()
		r.RequestTime = &r.reqTime
	}
	r.HourOfDay = d.int32()
	r.Tags = d.strs(r.Tags)
	r.Vector = d.floats(r.Vector)
	r.Candidates = d.strs(r.Candidates)
	r.Probs = d.floats(r.Probs)
	r.ChosenIndex = d.int32()
	r.ChosenArm = d.str()
	r.ChosenProb = d.float()
	r.Policy = d.str()
	r.PolicyVersion = d.str()
	r.Reason = d.str()
	r.ShadowPolicy, r.ShadowArm, r.ShadowProb, r.ShadowLoggedProb = nil, nil, nil, nil
	if flags&hasShadowPolicy != 0 {
		r.shadowPolicy = d.str()
		r.ShadowPolicy = &r.shadowPolicy
	}
	if flags&hasShadowArm != 0 {
		r.shadowArm = d.str()
		r.ShadowArm = &r.shadowArm
	}
	if flags&hasShadowProb != 0 {
		r.shadowProb = d.float()
		r.ShadowProb = &r.shadowProb
	}
	if flags&hasShadowLoggedProb != 0 {
		r.shadowLoggedProb = d.float()
		r.ShadowLoggedProb = &r.shadowLoggedProb
	}
	n := d.count(1 + 1 + 8 + 1)
	r.Attempts = r.Attempts[:0]
	for range n {
		r.Attempts = append(r.Attempts, AttemptRow{Arm: d.str(), Status: d.str(), LatencyMS: d.float(), Fallback: d.int32()})
	}
	r.FinalArm = d.str()
	r.Status = d.str()
	r.LatencyMS = d.float()
	r.TTFTMS = d.float()
	r.TokensIn = d.varint()
	r.TokensOut = d.varint()
	r.Cost = d.float()
	r.Quality = nil
	if flags&hasQuality != 0 {
		r.quality = d.float()
		r.Quality = &r.quality
	}
	r.Reward = d.float()
	r.RewardSource = d.str()
	if flags&^(1<<6-1) != 0 {
		d.fail(fmt.Errorf("unknown row flags %#x", flags))
	}
}

// feedbackCodec is the WAL codec of the feedback table.
type feedbackCodec struct{}

func (feedbackCodec) appendRow(b []byte, r *FeedbackRow) []byte {
	var flags byte
	if r.Reward != nil {
		flags |= 1
	}
	if r.Quality != nil {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(r.SchemaVersion))
	b = binary.AppendVarint(b, r.Time)
	b = appendStr(b, r.RequestID)
	if r.Reward != nil {
		b = appendFloat(b, *r.Reward)
	}
	if r.Quality != nil {
		b = appendFloat(b, *r.Quality)
	}
	return appendStr(b, r.Source)
}

func (feedbackCodec) decodeRow(d *walDecoder, r *FeedbackRow) {
	flags := d.byte1()
	r.SchemaVersion = d.int32()
	r.Time = d.varint()
	r.RequestID = d.str()
	r.Reward, r.Quality = nil, nil
	if flags&1 != 0 {
		r.reward = d.float()
		r.Reward = &r.reward
	}
	if flags&2 != 0 {
		r.quality = d.float()
		r.Quality = &r.quality
	}
	r.Source = d.str()
	if flags&^3 != 0 {
		d.fail(fmt.Errorf("unknown feedback flags %#x", flags))
	}
}

// scanAny is scanFile for a Parquet file or, for a name ending in
// walSuffix, the complete records of an open file's WAL segment. A
// segment committed since it was listed is read from its Parquet file.
func scanAny(ctx context.Context, path string, buf []Row, intern map[string]string, fn func([]Row) bool, onErr func(error) bool) bool {
	final, isWAL := strings.CutSuffix(path, walSuffix)
	if !isWAL {
		return scanFile(ctx, path, buf, intern, fn, onErr)
	}
	var ctxErr error
	_, more, err := readSegmentFile[Row](rowCodec{}, path, buf, func(rows []Row) bool {
		if ctxErr = ctx.Err(); ctxErr != nil {
			return false
		}
		return fn(rows)
	})
	switch {
	case ctxErr != nil:
		onErr(ctxErr)
		return false
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(final); serr == nil {
			return scanFile(ctx, final, buf, intern, fn, onErr)
		}
		return true // gone: abandoned or recovered under another name
	case err != nil:
		return onErr(&FileError{Path: path, Err: err})
	}
	return more
}
