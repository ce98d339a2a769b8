package decisionlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// Limits on what a page of a file this reader accepts may claim. parquet-go
// allocates what a page header claims before reading it, so a damaged
// header could ask for gigabytes; routelab's writer makes pages of about
// 256 KiB.
const (
	maxPageBytes  = 64 << 20
	maxPageValues = 16 << 20
)

// checkFooterBytes validates the Thrift structure of the file's footer
// before parquet-go decodes it: every list and binary length must fit in
// the bytes that remain, so a damaged length cannot make the decoder
// allocate more than a small multiple of the footer's size.
func checkFooterBytes(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("%d bytes: too small for parquet", size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	if string(tail[4:]) != "PAR1" {
		return fmt.Errorf("no PAR1 magic at the end (unfinished or encrypted file)")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n <= 0 || n > size-12 {
		return fmt.Errorf("footer length %d does not fit a %d-byte file", n, size)
	}
	footer := make([]byte, n)
	if _, err := r.ReadAt(footer, size-8-n); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	c := thriftCheck{b: footer}
	if err := c.structure(); err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	return nil
}

// checkPages walks every page header of every column chunk and rejects
// offsets, sizes and value counts that do not fit the chunk or exceed the
// limits above — before parquet-go trusts them.
func checkPages(f *parquet.File, r io.ReaderAt, size int64) error {
	md := f.Metadata()
	var proto thrift.CompactProtocol
	for gi := range md.RowGroups {
		rg := &md.RowGroups[gi]
		if rg.NumRows < 0 {
			return fmt.Errorf("row group %d: %d rows", gi, rg.NumRows)
		}
		for ci := range rg.Columns {
			cm := &rg.Columns[ci].MetaData
			start := cm.DataPageOffset
			if cm.DictionaryPageOffset != 0 {
				start = cm.DictionaryPageOffset
			}
			end := start + cm.TotalCompressedSize
			if start < 4 || cm.TotalCompressedSize < 0 || end > size || end < start {
				return fmt.Errorf("row group %d column %d: chunk [%d, %d) outside the %d-byte file", gi, ci, start, end, size)
			}
			for pos := start; pos < end; {
				var h format.PageHeader
				hlen, err := readPageHeader(&proto, r, pos, end, &h)
				if err != nil {
					return fmt.Errorf("row group %d column %d page at %d: %w", gi, ci, pos, err)
				}
				if err := checkPageHeader(&h, cm, rg.NumRows); err != nil {
					return fmt.Errorf("row group %d column %d page at %d: %w", gi, ci, pos, err)
				}
				pos += int64(hlen) + int64(h.CompressedPageSize)
				if pos > end {
					return fmt.Errorf("row group %d column %d: page overruns its chunk", gi, ci)
				}
			}
		}
	}
	return nil
}

// readPageHeader decodes the page header at pos, reading a growing window
// of bytes (never past end), and returns its encoded length.
func readPageHeader(proto *thrift.CompactProtocol, r io.ReaderAt, pos, end int64, h *format.PageHeader) (int, error) {
	for win := int64(1024); ; win *= 4 {
		n := min(win, end-pos)
		buf := make([]byte, n)
		if _, err := r.ReadAt(buf, pos); err != nil {
			return 0, fmt.Errorf("read page header: %w", err)
		}
		c := thriftCheck{b: buf}
		err := c.structure()
		if errors.Is(err, io.ErrUnexpectedEOF) && n < end-pos && win < 1<<20 {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("page header: %w", err)
		}
		*h = format.PageHeader{}
		if err := thrift.Unmarshal(proto, buf[:c.off], h); err != nil {
			return 0, fmt.Errorf("page header: %w", err)
		}
		return c.off, nil
	}
}

// checkPageHeader checks h against the fixed limits and against its
// column chunk: a page holds no more values, and no more uncompressed
// bytes, than the whole chunk (cm), and no more rows than its row group.
func checkPageHeader(h *format.PageHeader, cm *format.ColumnMetaData, rows int64) error {
	maxBytes := min(maxPageBytes, max(cm.TotalUncompressedSize, 0))
	maxValues := min(maxPageValues, max(cm.NumValues, 0))
	switch {
	case h.CompressedPageSize < 0 || h.CompressedPageSize > maxPageBytes:
		return fmt.Errorf("compressed size %d outside [0, %d]", h.CompressedPageSize, maxPageBytes)
	case h.UncompressedPageSize < 0 || int64(h.UncompressedPageSize) > maxBytes:
		return fmt.Errorf("uncompressed size %d outside [0, %d] (the chunk's total, at most %d)", h.UncompressedPageSize, maxBytes, maxPageBytes)
	}
	if p := h.DataPageHeaderV2; p.Valid && (int64(p.V.NumRows) > rows || p.V.NumNulls > p.V.NumValues) {
		return fmt.Errorf("%d rows (%d nulls of %d values) do not fit a row group of %d rows", p.V.NumRows, p.V.NumNulls, p.V.NumValues, rows)
	}
	var values []int32
	if p := h.DataPageHeader; p.Valid {
		values = append(values, p.V.NumValues)
	}
	if p := h.DataPageHeaderV2; p.Valid {
		values = append(values, p.V.NumValues, p.V.NumRows, p.V.NumNulls)
		if p.V.RepetitionLevelsByteLength < 0 || p.V.DefinitionLevelsByteLength < 0 ||
			int64(p.V.RepetitionLevelsByteLength)+int64(p.V.DefinitionLevelsByteLength) > int64(h.CompressedPageSize) {
			return fmt.Errorf("level lengths %d+%d exceed the page's %d bytes", p.V.RepetitionLevelsByteLength, p.V.DefinitionLevelsByteLength, h.CompressedPageSize)
		}
	}
	if p := h.DictionaryPageHeader; p.Valid {
		values = append(values, p.V.NumValues)
	}
	for _, v := range values {
		if v < 0 || int64(v) > maxValues {
			return fmt.Errorf("value count %d outside [0, %d] (the chunk's values, at most %d)", v, maxValues, maxPageValues)
		}
	}
	return nil
}

// thriftCheck walks Thrift compact-protocol bytes without building
// anything, checking that every length fits what remains.
type thriftCheck struct {
	b     []byte
	off   int
	depth int
}

var errThriftDepth = errors.New("thrift nesting too deep")

func (c *thriftCheck) byte1() (byte, error) {
	if c.off >= len(c.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c.off++
	return c.b[c.off-1], nil
}

func (c *thriftCheck) uvarint() (uint64, error) {
	u, n := binary.Uvarint(c.b[c.off:])
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if n < 0 {
		return 0, fmt.Errorf("varint overflow at %d", c.off)
	}
	c.off += n
	return u, nil
}

func (c *thriftCheck) skipN(n uint64) error {
	if n > uint64(len(c.b)-c.off) {
		return io.ErrUnexpectedEOF
	}
	c.off += int(n)
	return nil
}

func (c *thriftCheck) remaining() uint64 { return uint64(len(c.b) - c.off) }

// Compact protocol type ids.
const (
	ctTrue, ctFalse, ctByte, ctI16, ctI32, ctI64, ctDouble, ctBinary, ctList, ctSet, ctMap, ctStruct, ctUUID = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
)

func (c *thriftCheck) value(t byte) error {
	switch t {
	case ctTrue, ctFalse, ctByte:
		_, err := c.byte1()
		return err
	case ctI16, ctI32, ctI64:
		_, err := c.uvarint()
		return err
	case ctDouble:
		return c.skipN(8)
	case ctUUID:
		return c.skipN(16)
	case ctBinary:
		n, err := c.uvarint()
		if err != nil {
			return err
		}
		return c.skipN(n)
	case ctList, ctSet:
		h, err := c.byte1()
		if err != nil {
			return err
		}
		n, et := uint64(h>>4), h&0xf
		if n == 0xf {
			if n, err = c.uvarint(); err != nil {
				return err
			}
		}
		if n > c.remaining() { // every element takes at least one byte
			return io.ErrUnexpectedEOF
		}
		return c.nested(func() error {
			for range n {
				if err := c.value(et); err != nil {
					return err
				}
			}
			return nil
		})
	case ctMap:
		n, err := c.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := c.byte1()
		if err != nil {
			return err
		}
		if n > c.remaining()/2 {
			return io.ErrUnexpectedEOF
		}
		return c.nested(func() error {
			for range n {
				if err := c.value(kv >> 4); err != nil {
					return err
				}
				if err := c.value(kv & 0xf); err != nil {
					return err
				}
			}
			return nil
		})
	case ctStruct:
		return c.nested(c.fields)
	}
	return fmt.Errorf("unknown thrift type %d at %d", t, c.off)
}

func (c *thriftCheck) nested(fn func() error) error {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > 32 {
		return errThriftDepth
	}
	return fn()
}

// structure checks one struct: fields up to the stop byte.
func (c *thriftCheck) structure() error { return c.nested(c.fields) }

func (c *thriftCheck) fields() error {
	for {
		h, err := c.byte1()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil
		}
		t := h & 0xf
		if h>>4 == 0 { // long form: the field id follows
			if _, err := c.uvarint(); err != nil {
				return err
			}
		}
		if t == ctTrue || t == ctFalse {
			continue // a struct field's bool lives in its type
		}
		if err := c.value(t); err != nil {
			return err
		}
	}
}
