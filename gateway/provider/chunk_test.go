package provider

import (
	"reflect"
	"testing"
)

var chunkCases = []string{
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`,
	`{"id":"c","choices":null,"usage":null,"error":null}`,
	`{"error":{"message":"overloaded"}}`,
	`{"error":"boom","choices":[{}]}`,
	` { "choices" : [ 1 ] , "created" : -5 } `,
	`{"ID":"upper","choices":[{}]}`,                    // case-folded name: encoding/json matches it
	`{"id":"a","id":"b","choices":[{}]}`,               // repeated member: the last wins
	`{"\u0069d":"escaped","choices":[{}]}`,             // escaped name
	`{"id":"caf\u00e9","model":"m\"x","choices":[{}]}`, // escaped values
	`{"id":"café","choices":[{}]}`,
	`{"id":7,"choices":[{}]}`,        // wrong type: error
	`{"created":1.5,"choices":[{}]}`, // not an int64: error
	`{"created":99999999999999999999,"choices":[{}]}`,
	`{"choices":{}}`,
	`{"usage":{"prompt_tokens":"x"}}`,
	`{"usage":[]}`,
	`[1,2]`,
	`null`,
	`"text"`,
	`{"choices":[{}]`, // truncated
	`{"choices":[{}]} trailing`,
	``,
}

// TestParseChunkMatchesEncodingJSON: the fast reader gives the fields and
// the errors encoding/json gives, first chunk or not.
func TestParseChunkMatchesEncodingJSON(t *testing.T) {
	for _, s := range chunkCases {
		checkChunk(t, []byte(s))
	}
}

func checkChunk(t *testing.T, data []byte) {
	t.Helper()
	want, werr := parseChunkJSON(data)
	for _, first := range []bool{true, false} {
		got, gerr := parseChunk(data, first)
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("%q first=%v: error %v, encoding/json says %v", data, first, gerr, werr)
		}
		if werr != nil {
			continue
		}
		w := want
		if !first {
			w.ID, w.Model, w.Created = "", "", 0
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%q first=%v: got %+v, encoding/json reads %+v", data, first, got, w)
		}
	}
}

func FuzzParseChunk(f *testing.F) {
	for _, s := range chunkCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkChunk(t, data) })
}

// BenchmarkParseChunk: a typical content chunk, read by the fast path and
// by encoding/json.
func BenchmarkParseChunk(b *testing.B) {
	data := []byte(chunkCases[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseChunk(data, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseChunkJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
