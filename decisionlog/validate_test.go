package decisionlog

import (
	"testing"

	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/assert"
)

// TestCheckPageHeaderAgainstChunk: a page may claim no more values or
// uncompressed bytes than its column chunk and no more rows than its row
// group, so a damaged header is refused before parquet-go allocates what
// it claims.
func TestCheckPageHeaderAgainstChunk(t *testing.T) {
	cm := &format.ColumnMetaData{NumValues: 100, TotalUncompressedSize: 4096}
	data := func(values int32, size int32) *format.PageHeader {
		h := &format.PageHeader{CompressedPageSize: 100, UncompressedPageSize: size}
		h.DataPageHeader.Valid, h.DataPageHeader.V.NumValues = true, values
		return h
	}
	v2 := func(values, rows, nulls int32) *format.PageHeader {
		h := &format.PageHeader{CompressedPageSize: 100, UncompressedPageSize: 200}
		h.DataPageHeaderV2.Valid = true
		h.DataPageHeaderV2.V.NumValues, h.DataPageHeaderV2.V.NumRows, h.DataPageHeaderV2.V.NumNulls = values, rows, nulls
		return h
	}
	for _, tc := range []struct {
		name string
		h    *format.PageHeader
		want string // "" = accepted
	}{
		{"the whole chunk in one page", data(100, 4096), ""},
		{"more values than the chunk", data(101, 200), "value count 101 outside [0, 100]"},
		{"more bytes than the chunk", data(10, 4097), "uncompressed size 4097 outside [0, 4096]"},
		{"negative values", data(-1, 200), "value count -1"},
		{"v2 within its row group", v2(50, 40, 5), ""},
		{"v2 more rows than the row group", v2(50, 41, 0), "41 rows"},
		{"v2 more nulls than values", v2(50, 10, 51), "51 nulls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPageHeader(tc.h, cm, 40)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
	// Damaged chunk metadata cannot raise the fixed limits.
	huge := &format.ColumnMetaData{NumValues: 1 << 40, TotalUncompressedSize: 1 << 40}
	assert.ErrorContains(t, checkPageHeader(data(maxPageValues+1, 200), huge, 1<<40), "value count")
}
