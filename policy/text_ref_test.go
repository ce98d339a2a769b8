package policy_test

import (
	"encoding/csv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/require"
)

// refText is a deliberately plain implementation of the TextSpec
// definition (text.go's doc comments), written independently of the
// optimised encoder: it builds the normalised string, hashes every n-gram
// window from scratch, and walks every slot. TestTextEncodeMatchesReference
// holds the encoder to it bit for bit, so an optimisation that changes one
// hash, slot or float fails the test.
func refText(s policy.TextSpec, p string) []float64 {
	n := s.Buckets
	if s.Markers {
		n += len(policy.TextMarkerNames)
	}
	out := make([]float64, n)
	if p == "" {
		return out
	}
	isSpace := func(c byte) bool { return strings.IndexByte(" \n\t\r\f\v", c) >= 0 }
	isWord := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || c == '_'
	}
	lower := func(c byte) byte {
		if c >= 'A' && c <= 'Z' {
			return c + 32
		}
		return c
	}
	add := func(h uint64) {
		h = (h ^ h>>32) * 0x9e3779b97f4a7c15
		out[int(((h>>32)*uint64(s.Buckets))>>32)]++
	}
	if s.CharMax > 0 {
		// Lowercase, drop leading whitespace, collapse whitespace runs to
		// one space.
		var t []byte
		for i := 0; i < len(p); i++ {
			c := lower(p[i])
			if isSpace(c) {
				if len(t) == 0 || t[len(t)-1] == ' ' {
					continue
				}
				c = ' '
			}
			t = append(t, c)
		}
		// h(window) = Σ (byte+1)·base^(distance from the window's end).
		for n := s.CharMin; n <= s.CharMax; n++ {
			for end := n - 1; end < len(t); end++ {
				h, pw := uint64(0), uint64(1)
				for j := end; j > end-n; j-- {
					h += (uint64(t[j]) + 1) * pw
					pw *= 0x100000001b3
				}
				add(h ^ uint64(n)<<56)
			}
		}
	}
	if s.WordNgrams > 0 {
		var toks []uint64
		for i := 0; i < len(p); {
			switch c := p[i]; {
			case isWord(c):
				h := uint64(14695981039346656037)
				for ; i < len(p) && isWord(p[i]); i++ {
					h = (h ^ uint64(lower(p[i]))) * 1099511628211
				}
				toks = append(toks, h)
			case isSpace(c):
				i++
			default:
				toks = append(toks, (14695981039346656037^uint64(c))*1099511628211)
				i++
			}
		}
		for k := range toks {
			for n := 1; n <= s.WordNgrams && n <= k+1; n++ {
				g := uint64(0)
				for j := k; j > k-n; j-- { // the newest word has the highest power
					g = g*0x9e3779b97f4a7c15 + toks[j]
				}
				add(g ^ uint64(0x80|n)<<56)
			}
		}
	}
	if s.Buckets > 0 {
		ss := 0.0
		for i := range s.Buckets {
			if s.IDF != nil {
				out[i] *= s.IDF[i]
			}
			ss += out[i] * out[i]
		}
		if ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for i := range s.Buckets {
				out[i] *= inv
			}
		}
	}
	if !s.Markers {
		return out
	}
	var digits, lowerN, upperN, nonASCII, mathN, spaces, lines, words, code float64
	codeMarkers := []string{"```", "def ", "return", "import ", "==", "{", "}", ";", "function", "class ", "print(", "=>", "#include"}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\n':
			lines++
			spaces++
		case isSpace(c):
			spaces++
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z':
			lowerN++
		case c >= 'A' && c <= 'Z':
			upperN++
		case c >= 0x80:
			nonASCII++
		case strings.IndexByte("+-*/=^<>%", c) >= 0:
			mathN++
		}
		if isWord(c) && (i == 0 || !isWord(p[i-1])) {
			words++
		}
		if !isWord(c) || i == 0 || !isWord(p[i-1]) {
			for _, cm := range codeMarkers {
				if strings.HasPrefix(p[i:], cm) {
					code++
					break
				}
			}
		}
	}
	frac := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	nonSpace := float64(len(p)) - spaces
	m := out[s.Buckets:]
	m[0] = min(1, math.Log1p(float64(len(p)))/math.Log1p(32768))
	m[1] = min(1, math.Log1p(words)/math.Log1p(8192))
	m[2] = frac(digits, nonSpace)
	m[3] = min(1, code/(lines+1)/4)
	m[4] = min(1, 5*frac(mathN, nonSpace))
	m[5] = frac(upperN, lowerN+upperN)
	m[6] = frac(nonASCII, float64(len(p)))
	m[7] = min(1, math.Log1p(lines)/math.Log1p(1024))
	return out
}

// realPrompts returns up to n prompts from the shared benchmark tables
// ($ROUTELAB_DATA or ../../shared/data), or none when the data is absent.
func realPrompts(t *testing.T, n int) []string {
	t.Helper()
	dir := os.Getenv("ROUTELAB_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "routerbench", "*.csv"))
	more, _ := filepath.Glob(filepath.Join(dir, "routellm", "mmlu", "*.csv"))
	files = append(files, more...)
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		r := csv.NewReader(fh)
		r.FieldsPerRecord = -1
		_, err = r.Read() // header
		for k := 0; err == nil && k < n/len(files)+1; k++ {
			var rec []string
			if rec, err = r.Read(); err == nil {
				out = append(out, rec[0])
			}
		}
		require.NoError(t, fh.Close())
		if err != nil && err != io.EOF {
			require.NoError(t, err, f)
		}
	}
	return out
}

func TestTextEncodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	// Random prompts over an alphabet dense in the cases the encoder
	// distinguishes: letters of both cases, digits, whitespace runs,
	// punctuation, math and code markers, non-ASCII bytes.
	const alphabet = "aAbBzZ09_ \n\t\r  .,;{}()=+-*/<>%^#`'\"\xc3\xa9\xff"
	prompts := []string{"", " ", "  \n", "a", "ab", "abc", "A b", "return x == 1;", "def f():\n  return 1", prompt2KB, realistic2KB}
	for range 300 {
		b := make([]byte, rng.IntN(400))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		prompts = append(prompts, string(b))
	}
	real := realPrompts(t, 600)
	prompts = append(prompts, real...)
	t.Logf("%d prompts, %d of them from the shared benchmark data", len(prompts), len(real))
	specs := []policy.TextSpec{
		{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true},
		{Buckets: 32, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true},
		{Buckets: 1000, WordNgrams: 4, CharMin: 1, CharMax: 8},
		{Buckets: 64, CharMin: 2, CharMax: 5, Markers: true},
		{Buckets: 4096, WordNgrams: 3},
		{Buckets: 1, WordNgrams: 1, CharMin: 8, CharMax: 8},
		{Buckets: 1, CharMin: 3, CharMax: 4},
		{Buckets: 100, WordNgrams: 1, CharMin: 2, CharMax: 4}, // not a power of two
		{Buckets: 3000, CharMin: 3, CharMax: 4},
		{Buckets: 256, CharMin: 1, CharMax: 3},
		{Buckets: 1 << 16, WordNgrams: 2, CharMin: 1, CharMax: 1},
		{Markers: true},
	}
	// One spec with fitted IDF weights.
	idf := policy.TextSpec{Buckets: 512, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}
	idf.IDF = make([]float64, idf.Buckets)
	for i := range idf.IDF {
		idf.IDF[i] = 1 + rng.Float64()*5
	}
	specs = append(specs, idf)
	for _, ts := range specs {
		e := textEncoder(t, ts)
		var dst []float64
		for k, p := range prompts {
			dst = e.Encode(&decision.Features{Prompt: p}, dst)
			want := refText(ts, p)
			for i, w := range want {
				if got := dst[1+i]; math.Float64bits(got) != math.Float64bits(w) {
					t.Fatalf("spec %+v, prompt %d (%q…): slot %d = %v, reference %v", ts, k, p[:min(len(p), 40)], i, got, w)
				}
			}
		}
	}
}
