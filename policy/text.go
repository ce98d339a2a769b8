package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TextSpec is the text block of an EncoderSpec: features of the prompt
// text (decision.Features.Prompt), computed on the request path.
//
//	text          Buckets slots: hashed word n-grams (1..WordNgrams) and
//	              character n-grams (CharMin..CharMax) of the lowercased
//	              prompt, term counts × IDF, L2-normalised (TF-IDF)
//	markers       len(TextMarkerNames) slots when Markers: length, digit,
//	              code, math and language hints, each in [0,1]
//
// The n-gram hash is fixed and unseeded (see TextHash), so a spec fitted
// offline (FitTextIDF) encodes the same prompt to the same vector in every
// process. IDF, fitted on a training corpus, is part of the spec: it travels
// in artifacts and gateway configs with the rest of the encoder. An empty
// prompt sets no text slot (the markers are 0 too).
type TextSpec struct {
	// Buckets is the number of hashed n-gram slots, 0 = no n-gram block.
	Buckets int `yaml:"buckets,omitempty" json:"buckets,omitempty"`
	// WordNgrams is the longest word n-gram hashed (1 = single words, 2 =
	// words and word pairs); 0 = no word n-grams. Words are runs of
	// letters, digits and non-ASCII bytes; every other byte separates them
	// and is itself a one-byte word when it is punctuation.
	WordNgrams int `yaml:"word_ngrams,omitempty" json:"word_ngrams,omitempty"`
	// CharMin..CharMax are the lengths of hashed character n-grams (bytes
	// of the lowercased prompt with whitespace runs collapsed to one space);
	// 0 = none. At most 8.
	CharMin int `yaml:"char_min,omitempty" json:"char_min,omitempty"`
	CharMax int `yaml:"char_max,omitempty" json:"char_max,omitempty"`
	// IDF are the inverse document frequencies of the Buckets slots, fitted
	// offline (FitTextIDF); empty means 1 for every slot (plain TF).
	IDF []float64 `yaml:"idf,omitempty" json:"idf,omitempty"`
	// Markers adds the TextMarkerNames slots.
	Markers bool `yaml:"markers,omitempty" json:"markers,omitempty"`
}

// NeedsPrompt reports whether e reads decision.Features.Prompt (a
// FeatureEncoder with a text block), so callers can skip extracting the
// prompt text when it would be ignored.
func NeedsPrompt(e Encoder) bool {
	fe, ok := e.(*FeatureEncoder)
	return ok && fe.o.Text != nil
}

// TextMarkerNames label the marker slots of a TextSpec with Markers, in
// vector order.
var TextMarkerNames = []string{
	"text_len",      // log(1+bytes)/log(1+32768), capped at 1
	"text_words",    // log(1+words)/log(1+8192), capped at 1
	"text_digits",   // share of digit bytes among non-space bytes
	"text_code",     // code markers (``` def return { } ; == import ...) per line, capped at 1
	"text_math",     // share of math symbol bytes (+ - * / = ^ < > %) among non-space bytes, ×5, capped at 1
	"text_upper",    // share of upper-case ASCII letters among letters
	"text_nonascii", // share of non-ASCII bytes (a hint of a non-English language)
	"text_lines",    // log(1+newlines)/log(1+1024), capped at 1
}

// maxTextBuckets bounds TextSpec.Buckets.
const maxTextBuckets = 1 << 20

// maxCharN bounds CharMax.
const maxCharN = 8

func (s *TextSpec) clone() *TextSpec {
	if s == nil {
		return nil
	}
	c := *s
	c.IDF = append([]float64(nil), s.IDF...)
	if len(c.IDF) == 0 {
		c.IDF = nil
	}
	return &c
}

// validate names the first unusable field of s.
func (s *TextSpec) validate() error {
	if s.Buckets < 0 || s.Buckets > maxTextBuckets {
		return fmt.Errorf("encoder text buckets %d: must be in [0, %d]", s.Buckets, maxTextBuckets)
	}
	if s.WordNgrams < 0 || s.WordNgrams > 4 {
		return fmt.Errorf("encoder text word_ngrams %d: must be in [0, 4]", s.WordNgrams)
	}
	if s.CharMin < 0 || s.CharMax < 0 || s.CharMax > maxCharN || (s.CharMin == 0) != (s.CharMax == 0) || s.CharMin > s.CharMax {
		return fmt.Errorf("encoder text char_min %d, char_max %d: want 1 <= char_min <= char_max <= %d, or both 0", s.CharMin, s.CharMax, maxCharN)
	}
	grams := s.WordNgrams > 0 || s.CharMax > 0
	if s.Buckets > 0 && !grams {
		return fmt.Errorf("encoder text buckets %d: no n-grams to hash (set word_ngrams or char_min/char_max)", s.Buckets)
	}
	if grams && s.Buckets == 0 {
		return fmt.Errorf("encoder text: n-grams configured but buckets is 0")
	}
	if len(s.IDF) != 0 && len(s.IDF) != s.Buckets {
		return fmt.Errorf("encoder text idf: %d values for %d buckets", len(s.IDF), s.Buckets)
	}
	for i, v := range s.IDF {
		if !(v >= 0) || math.IsInf(v, 1) {
			return fmt.Errorf("encoder text idf[%d] = %v: must be a finite number >= 0", i, v)
		}
	}
	if s.Buckets == 0 && !s.Markers {
		return fmt.Errorf("encoder text: empty block (no buckets, no markers)")
	}
	return nil
}

// names appends the slot labels of s.
func (s *TextSpec) names(name func(string)) {
	for i := 0; i < s.Buckets; i++ {
		name("text#" + strconv.Itoa(i))
	}
	if s.Markers {
		for _, n := range TextMarkerNames {
			name(n)
		}
	}
}

// TextHash mixes a 64-bit n-gram hash; the slot of an n-gram is
// TextSlot(TextHash(h), Buckets). It folds the high half into the low one
// and multiplies by 2^64/φ (Fibonacci hashing), so the high bits TextSlot
// uses depend on every bit of h; the constants are fixed, so slots are the
// same in every process and build.
func TextHash(h uint64) uint64 {
	return (h ^ h>>32) * 0x9e3779b97f4a7c15
}

// TextSlot maps a mixed hash to one of n slots: the high 32 bits scaled to
// [0, n) by a multiply and shift (no division on the request path).
func TextSlot(h uint64, n int) int { return int(((h >> 32) * uint64(n)) >> 32) }

// lower maps an ASCII upper-case letter to lower case, other bytes as is.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c >= 0x80 || c == '_'
}

// Rolling-hash constants: char n-grams use a polynomial hash mod 2^64 with
// base charBase; word n-grams combine FNV-1a word hashes with wordMul.
const (
	charBase = 0x100000001b3
	wordMul  = 0x9e3779b97f4a7c15
	fnv64Off = 14695981039346656037
	fnv64Pri = 1099511628211
)

// count adds 1 to b[TextSlot(TextHash(h), len(b))] for the 64-bit hash h
// of every n-gram of prompt that s configures. Word n-grams of different
// n, and char n-grams of different n, hash apart because n is mixed in. It
// does not allocate.
//
// The n-gram of char length n ending at byte i of the normalised text t
// hashes to Σ_k (t[i-k]+1)·charBase^k, k < n; word n-grams ending at word
// j to Σ_k w[j-k]·wordMul^(n-1-k), w the words' FNV-1a hashes. Counts are
// whole numbers, so the order of the increments does not change b.
func (s *TextSpec) count(prompt string, b []float64) {
	if s.CharMax > 0 {
		countChars(prompt, s.CharMin, s.CharMax, b)
	}
	if s.WordNgrams > 0 {
		countWords(prompt, s.WordNgrams, b)
	}
}

// Bits of textClass: whitespace, and bytes of words (isWordByte).
const (
	tcSpace = 1 << iota
	tcWord
)

// textClass, textLower and textChar are count's per-byte tables; textChar
// is the byte of the normalised text plus 1 (whitespace → ' '+1), the
// term of the char n-gram hash.
var textClass, textLower, textChar = func() (cls, low [256]byte, chr [256]uint64) {
	for c := range 256 {
		if isSpace(byte(c)) {
			cls[c] |= tcSpace
		}
		if isWordByte(byte(c)) {
			cls[c] |= tcWord
		}
		low[c] = lower(byte(c))
		chr[c] = uint64(low[c]) + 1
		if isSpace(byte(c)) {
			chr[c] = ' ' + 1
		}
	}
	return cls, low, chr
}()

// bump adds 1 to the slot of the n-gram hash h (n already mixed in).
func bump(b []float64, h, nb uint64) {
	m := TextHash(h)
	b[((m>>32)*nb)>>32]++
}

// countChars counts the char lo..hi-grams of p into b. The normalised
// text (lowercased, leading whitespace dropped, whitespace runs as one
// space) is never materialised: h[n] is the hash of the n-gram ending at
// the current byte, computed from the previous byte's (n-1)-gram as
// g + charBase·h[n-1], g = textChar of the byte.
func countChars(p string, lo, hi int, b []float64) {
	switch {
	case hi > 4:
		countCharsLong(p, lo, hi, b)
	case lo == 3 && hi == 4:
		countChars34(p, b)
	default:
		countChars4(p, lo, hi, b)
	}
}

// countChars4 is countChars for n ≤ 4: the four hashes live in registers.
func countChars4(p string, lo, hi int, b []float64) {
	nb := uint64(len(b))
	var h1, h2, h3 uint64
	seen := 0
	prevSpace := true // leading whitespace is dropped
	e1, e2, e3, e4 := lo <= 1, lo <= 2 && hi >= 2, lo <= 3 && hi >= 3, hi >= 4
	for i := 0; i < len(p); i++ {
		g := textChar[p[i]]
		sp := g == ' '+1
		if sp && prevSpace {
			continue
		}
		prevSpace = sp
		h4 := g + charBase*h3
		h3 = g + charBase*h2
		h2 = g + charBase*h1
		h1 = g
		seen++
		if seen >= 4 {
			if e1 {
				bump(b, h1^1<<56, nb)
			}
			if e2 {
				bump(b, h2^2<<56, nb)
			}
			if e3 {
				bump(b, h3^3<<56, nb)
			}
			if e4 {
				bump(b, h4^4<<56, nb)
			}
			continue
		}
		if e1 {
			bump(b, h1^1<<56, nb)
		}
		if e2 && seen >= 2 {
			bump(b, h2^2<<56, nb)
		}
		if e3 && seen >= 3 {
			bump(b, h3^3<<56, nb)
		}
	}
}

// countChars34 is countChars4 for 3- and 4-grams (benchdata's default,
// --text-chars 3-4) with the choice of n-grams fixed at compile time
// rather than tested per byte: about 15% faster. Keep the two in
// step; TestTextEncodeMatchesReference checks both.
func countChars34(p string, b []float64) {
	nb := uint64(len(b))
	var h1, h2, h3 uint64
	seen := 0
	prevSpace := true // leading whitespace is dropped
	for i := 0; i < len(p); i++ {
		g := textChar[p[i]]
		sp := g == ' '+1
		if sp && prevSpace {
			continue
		}
		prevSpace = sp
		h4 := g + charBase*h3
		h3 = g + charBase*h2
		h2 = g + charBase*h1
		h1 = g
		seen++
		if seen >= 3 {
			bump(b, h3^3<<56, nb)
			if seen >= 4 {
				bump(b, h4^4<<56, nb)
			}
		}
	}
}

// countCharsLong is countChars for n-grams longer than 4.
func countCharsLong(p string, lo, hi int, b []float64) {
	nb := uint64(len(b))
	var h [maxCharN + 1]uint64 // h[0] stays 0
	seen := 0
	prevSpace := true
	for i := 0; i < len(p); i++ {
		g := textChar[p[i]]
		sp := g == ' '+1
		if sp && prevSpace {
			continue
		}
		prevSpace = sp
		for n := hi; n >= 1; n-- {
			h[n] = g + charBase*h[n-1]
		}
		seen++
		for n := lo; n <= hi && n <= seen; n++ {
			bump(b, h[n]^uint64(n)<<56, nb)
		}
	}
}

// countWords counts the word 1..maxN-grams of p into b.
func countWords(p string, maxN int, b []float64) {
	nb := uint64(len(b))
	var last [4]uint64 // hashes of the last words, most recent first
	nw := 0
	for i := 0; i < len(p); {
		c := p[i]
		var h uint64
		switch cls := textClass[c]; {
		case cls&tcWord != 0:
			h = fnv64Off
			for ; i < len(p) && textClass[p[i]]&tcWord != 0; i++ {
				h = (h ^ uint64(textLower[p[i]])) * fnv64Pri
			}
		case cls&tcSpace != 0:
			i++
			continue
		default: // punctuation: a one-byte word
			h = (fnv64Off ^ uint64(c)) * fnv64Pri
			i++
		}
		last[3], last[2], last[1], last[0] = last[2], last[1], last[0], h
		nw++
		bump(b, h^0x81<<56, nb)
		g := h
		for n := 2; n <= maxN && n <= nw; n++ {
			g = g*wordMul + last[n-1]
			bump(b, g^uint64(0x80|n)<<56, nb)
		}
	}
}

// encodeText writes s's slots for prompt into v (len = s.Buckets, plus the
// markers when configured), which must be zeroed.
func (s *TextSpec) encodeText(prompt string, v []float64) {
	if prompt == "" {
		return
	}
	if s.Buckets > 0 {
		b := v[:s.Buckets]
		s.count(prompt, b)
		// TF-IDF and L2 normalisation over every slot, without branches:
		// empty slots stay +0 and add +0 to ss, so the result is the same
		// as over the non-zero slots alone, in index order.
		ss := 0.0
		if s.IDF != nil {
			idf := s.IDF[:len(b)]
			for i, x := range b {
				x *= idf[i]
				b[i] = x
				ss += x * x
			}
		} else {
			for _, x := range b {
				ss += x * x
			}
		}
		if ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for i := range b {
				b[i] *= inv
			}
		}
	}
	if s.Markers {
		textMarkers(prompt, v[s.Buckets:s.Buckets+len(TextMarkerNames)])
	}
}

// codeMarkers are substrings that suggest source code.
var codeMarkers = []string{"```", "def ", "return", "import ", "==", "{", "}", ";", "function", "class ", "print(", "=>", "#include"}

// Byte classes of textMarkers, one table lookup per byte.
const (
	clsOther = iota
	clsSpace
	clsNewline
	clsDigit
	clsLower
	clsUpper
	clsNonASCII
	clsMath
	nClasses
)

// byteClass, wordByte (1 for bytes of words, isWordByte) and codeStart
// (first bytes of codeMarkers) are textMarkers' lookup tables.
var byteClass, wordByte, codeStart = byteTables()

func byteTables() (byteClass, wordByte [256]uint8, codeStart [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b == '\n':
			byteClass[c] = clsNewline
		case isSpace(b):
			byteClass[c] = clsSpace
		case '0' <= b && b <= '9':
			byteClass[c] = clsDigit
		case 'a' <= b && b <= 'z':
			byteClass[c] = clsLower
		case 'A' <= b && b <= 'Z':
			byteClass[c] = clsUpper
		case b >= 0x80:
			byteClass[c] = clsNonASCII
		case strings.IndexByte("+-*/=^<>%", b) >= 0:
			byteClass[c] = clsMath
		}
		if isWordByte(b) {
			wordByte[c] = 1
		}
	}
	for _, cm := range codeMarkers {
		codeStart[cm[0]] = true
	}
	return byteClass, wordByte, codeStart
}

// textMarkers fills m (len(TextMarkerNames)) for a non-empty prompt in
// one pass: a class-table lookup per byte, and a code-marker comparison
// only where a marker's first byte appears (at a word start for markers
// that begin with a letter).
func textMarkers(p string, m []float64) {
	var cnt [nClasses]int
	words, code := 0, 0
	prevWord := uint8(0)
	for i := 0; i < len(p); i++ {
		c := p[i]
		cnt[byteClass[c]]++
		w := wordByte[c]
		words += int(w &^ prevWord)
		if codeStart[c] && (w == 0 || prevWord == 0) {
			code += codeAt(p[i:])
		}
		prevWord = w
	}
	lines := float64(cnt[clsNewline])
	nonSpace := float64(len(p) - cnt[clsSpace] - cnt[clsNewline])
	letters := float64(cnt[clsLower] + cnt[clsUpper])
	frac := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	logCap := func(x, ref float64) float64 { return min(1, math.Log1p(x)/math.Log1p(ref)) }
	m[0] = logCap(float64(len(p)), 32768)
	m[1] = logCap(float64(words), 8192)
	m[2] = frac(float64(cnt[clsDigit]), nonSpace)
	m[3] = min(1, float64(code)/(lines+1)/4)
	m[4] = min(1, 5*frac(float64(cnt[clsMath]), nonSpace))
	m[5] = frac(float64(cnt[clsUpper]), letters)
	m[6] = frac(float64(cnt[clsNonASCII]), float64(len(p)))
	m[7] = logCap(lines, 1024)
}

// codeAt is 1 when s starts with one of codeMarkers, else 0.
func codeAt(s string) int {
	for _, cm := range codeMarkers {
		if cm[0] == s[0] && strings.HasPrefix(s, cm) {
			return 1
		}
	}
	return 0
}

// FitTextIDF returns a copy of s with IDF fitted on the documents docs
// yields (training prompts only: fitting on evaluation prompts would leak
// them): idf = ln((1+N)/(1+df)) + 1 per slot, df the number of documents
// with an n-gram in the slot (the smoothed IDF of scikit-learn). s must
// have Buckets > 0.
func FitTextIDF(s TextSpec, docs func(yield func(string) bool)) (TextSpec, error) {
	s.IDF = nil
	if err := s.validate(); err != nil {
		return s, err
	}
	if s.Buckets == 0 {
		return s, fmt.Errorf("fit text idf: no buckets to weight")
	}
	df := make([]float64, s.Buckets)
	tf := make([]float64, s.Buckets)
	n := 0
	for d := range docs {
		n++
		s.count(d, tf)
		for i, x := range tf {
			if x != 0 {
				df[i]++
				tf[i] = 0
			}
		}
	}
	if n == 0 {
		return s, fmt.Errorf("fit text idf: no documents")
	}
	s.IDF = make([]float64, s.Buckets)
	for i := range df {
		s.IDF[i] = math.Log((1+float64(n))/(1+df[i])) + 1
	}
	return s, nil
}
