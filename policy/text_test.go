package policy_test

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func textEncoder(t testing.TB, ts policy.TextSpec) *policy.FeatureEncoder {
	t.Helper()
	e, err := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Text: &ts})
	require.NoError(t, err)
	return e
}

// nonzero returns the non-zero text slots of v (after the intercept), sorted
// by value.
func nonzero(v []float64, buckets int) []float64 {
	var out []float64
	for _, x := range v[1 : 1+buckets] {
		if x != 0 {
			out = append(out, x)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestTextNgramCounts(t *testing.T) {
	const nb = 1 << 16 // large enough that these few n-grams do not collide
	tests := []struct {
		name   string
		spec   policy.TextSpec
		prompt string
		counts []float64 // term counts of the distinct n-grams, ascending
	}{
		// "abab": ab, ba, ab.
		{"char bigrams", policy.TextSpec{Buckets: nb, CharMin: 2, CharMax: 2}, "abab", []float64{1, 2}},
		// Case and whitespace runs do not matter: "ab ab " → ab, "b ", " a", ab, "b ".
		{"char case and space", policy.TextSpec{Buckets: nb, CharMin: 2, CharMax: 2}, "  AB \n\t aB ", []float64{1, 2, 2}},
		// 1..3-grams of "abc": a b c ab bc abc.
		{"char 1-3", policy.TextSpec{Buckets: nb, CharMin: 1, CharMax: 3}, "abc", []float64{1, 1, 1, 1, 1, 1}},
		// the×2 cat×2, "the cat"×2, "cat the"×1.
		{"word bigrams", policy.TextSpec{Buckets: nb, WordNgrams: 2}, "The cat the CAT", []float64{1, 2, 2, 2}},
		// Punctuation is a word: x, "(", y, ")".
		{"punctuation", policy.TextSpec{Buckets: nb, WordNgrams: 1}, "x(y)", []float64{1, 1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := textEncoder(t, tc.spec)
			v := e.Encode(&decision.Features{Prompt: tc.prompt}, nil)
			norm := 0.0
			for _, c := range tc.counts {
				norm += c * c
			}
			want := make([]float64, len(tc.counts))
			for i, c := range tc.counts {
				want[i] = c / math.Sqrt(norm)
			}
			assert.InDeltaSlice(t, want, nonzero(v, nb), 1e-12, "got %v", nonzero(v, nb))
		})
	}
}

func TestTextIDFAndMarkers(t *testing.T) {
	docs := []string{"def f(x): return x", "the cat sat", "the dog ran"}
	spec, err := policy.FitTextIDF(policy.TextSpec{Buckets: 1 << 12, WordNgrams: 1, Markers: true}, func(yield func(string) bool) {
		for _, d := range docs {
			if !yield(d) {
				return
			}
		}
	})
	require.NoError(t, err)
	require.Len(t, spec.IDF, 1<<12)
	e := textEncoder(t, spec)
	v := e.Encode(&decision.Features{Prompt: "the cat"}, nil)
	// "the" is in 2 of 3 documents, "cat" in 1: idf ln(4/3)+1 and ln(4/2)+1.
	a, b := math.Log(4.0/3)+1, math.Log(2)+1
	n := math.Hypot(a, b)
	assert.InDeltaSlice(t, []float64{a / n, b / n}, nonzero(v, 1<<12), 1e-12)
	names := e.Names()
	mk := func(name string) float64 {
		for i, s := range names {
			if s == name {
				return v[i]
			}
		}
		t.Fatalf("no slot %q in %v", name, names[len(names)-10:])
		return 0
	}
	assert.Zero(t, mk("text_code"))
	assert.Greater(t, mk("text_len"), 0.0)
	code := e.Encode(&decision.Features{Prompt: "```python\ndef f(x):\n    return x == 1;\n```"}, nil)
	assert.Greater(t, code[len(code)-len(policy.TextMarkerNames)+3], 0.3, "code marker of code")
	maths := e.Encode(&decision.Features{Prompt: "12 + 7 * 3 = ?"}, nil)
	assert.GreaterOrEqual(t, maths[len(maths)-len(policy.TextMarkerNames)+2], 0.5, "digit share")
	assert.Greater(t, maths[len(maths)-len(policy.TextMarkerNames)+4], 0.5, "math marker")
	for i, x := range code[len(code)-len(policy.TextMarkerNames):] {
		assert.True(t, x >= 0 && x <= 1, "marker %s = %v outside [0,1]", policy.TextMarkerNames[i], x)
	}
	// No prompt: no text slot set.
	empty := e.Encode(&decision.Features{Task: "x"}, nil)
	assert.Equal(t, 1.0, floatsSum(empty))
}

func floatsSum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func TestTextSpecRoundTripAndErrors(t *testing.T) {
	spec := policy.EncoderSpec{Intercept: true, Tasks: []string{"a"}, Text: &policy.TextSpec{Buckets: 4, WordNgrams: 2, CharMin: 3, CharMax: 4, IDF: []float64{1, 2, 3, 4}, Markers: true}}
	e, err := policy.NewEncoder(spec)
	require.NoError(t, err)
	assert.Equal(t, policy.EncoderSpecVersion, e.Spec().Version)
	assert.Equal(t, 1+2+4+len(policy.TextMarkerNames), e.Dim())
	var back policy.EncoderSpec
	require.NoError(t, json.Unmarshal(spec.Canonical(), &back))
	assert.True(t, back.Equal(spec), "round trip %s", back.Canonical())
	other := spec.Clone()
	other.Text.IDF[0] = 9
	assert.False(t, other.Equal(spec), "a different IDF is a different encoder")
	assert.Equal(t, 1.0, spec.Text.IDF[0], "Clone copies the IDF")

	for _, tc := range []struct {
		ts   policy.TextSpec
		want string
	}{
		{policy.TextSpec{}, "empty block"},
		{policy.TextSpec{Buckets: 8}, "no n-grams"},
		{policy.TextSpec{WordNgrams: 1}, "buckets is 0"},
		{policy.TextSpec{Buckets: 8, CharMin: 3, CharMax: 9}, "char_max 9"},
		{policy.TextSpec{Buckets: 8, CharMin: 4, CharMax: 3}, "char_min 4"},
		{policy.TextSpec{Buckets: 8, WordNgrams: 5}, "word_ngrams 5"},
		{policy.TextSpec{Buckets: 2, WordNgrams: 1, IDF: []float64{1}}, "1 values for 2 buckets"},
		{policy.TextSpec{Buckets: 2, WordNgrams: 1, IDF: []float64{1, math.NaN()}}, "idf[1]"},
		{policy.TextSpec{Buckets: -1, Markers: true}, "buckets -1"},
	} {
		_, err := policy.NewEncoder(policy.EncoderSpec{Text: &tc.ts})
		if assert.Error(t, err, "%+v", tc.ts) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

// prompt2KB is a 2 KB prompt of the kind RouterBench holds.
var prompt2KB = func() string {
	var b strings.Builder
	for b.Len() < 2048 {
		b.WriteString("Question: Which property of a mineral can be determined just by looking at it? ")
		b.WriteString("A. luster B. mass C. weight D. hardness. Answer with the letter; 42 + 7 = 49.\n")
	}
	return b.String()[:2048]
}()

// realistic2KB is a 2 KB prompt of varied text (a reading passage, a
// question with choices, a code fragment, numbers), so that most of its
// n-grams are distinct, unlike prompt2KB's repeated sentence.
var realistic2KB = func() string {
	s := `Read the passage and answer the question that follows.

In 1859, Edwin Drake drilled the first commercially successful oil well near Titusville,
Pennsylvania. Within a decade, kerosene refined from crude petroleum had displaced whale oil
as the dominant lamp fuel across North America and much of Europe. Historians often argue that
the shift was driven less by scarcity of whales than by price: by 1865 a gallon of kerosene
cost roughly a quarter of the equivalent quantity of sperm oil, and it burned brighter with
less odour. Yet the early industry was chaotic. Wildcat producers flooded the market, prices
collapsed from $20 a barrel in 1860 to 10 cents in 1861, and refiners competed on thin margins
until consolidation under Standard Oil imposed a measure of order (and, its critics said, a
monopoly). The Sherman Antitrust Act of 1890 was written with such trusts in mind, although
the Supreme Court did not order Standard Oil's dissolution until 1911.

Question: According to the passage, which factor best explains kerosene's rapid adoption?
A. A sudden collapse in the global whale population
B. Its lower price and better performance as a lamp fuel
C. Federal legislation that banned the sale of whale oil
D. The dissolution of Standard Oil in 1911

A student wrote the following Python helper to check an answer key:

def score(answers, key):
    correct = sum(1 for a, k in zip(answers, key) if a.strip().upper() == k)
    return correct / max(1, len(key))

If answers = ["b", " B", "c"] and key = ["B", "B", "D"], what does score return?
Show your reasoning briefly, then give the final answer on its own line as "Answer: X",
where X is the letter of the correct choice for the passage question, followed by the value
returned by score (for example 0.25 or 0.5). Explain any assumptions you make about
whitespace, capitalisation and the handling of an empty key; note that 2/3 ≈ 0.667.
`
	for len(s) < 2048 {
		s += s
	}
	return s[:2048]
}()

func TestTextEncodeNoAlloc(t *testing.T) {
	e := textEncoder(t, policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true})
	f := &decision.Features{Prompt: prompt2KB}
	dst := make([]float64, e.Dim())
	allocs := testing.AllocsPerRun(20, func() { dst = e.Encode(f, dst) })
	assert.Zero(t, allocs)
}

// BenchmarkTextEncode featurises a 2 KB prompt (prompt2KB: one sentence
// repeated; realistic2KB: varied text) with the held-out report's text
// block (2048 slots, word 1–2- and char 3–4-grams, markers), and with word
// n-grams only.
func BenchmarkTextEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		ts   policy.TextSpec
	}{
		{"words1-2+chars3-4/2048", policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}},
		{"words1-2/2048", policy.TextSpec{Buckets: 2048, WordNgrams: 2, Markers: true}},
	} {
		for _, pc := range benchPrompts {
			b.Run(bc.name+"/"+pc.name, func(b *testing.B) {
				e := textEncoder(b, bc.ts)
				f := &decision.Features{Prompt: pc.prompt}
				b.ReportAllocs()
				for b.Loop() {
					f.Vector = e.Encode(f, f.Vector)
				}
			})
		}
	}
}

// benchPrompts are the 2 KB prompts of the text benchmarks.
var benchPrompts = []struct{ name, prompt string }{{"repeated", prompt2KB}, {"varied", realistic2KB}}

// BenchmarkTextSelect featurises a 2 KB prompt and selects among 11 arms:
// the request-path cost of text features (target ≤ 20 µs, 0 allocs).
func BenchmarkTextSelect(b *testing.B) {
	arms := make([]decision.Arm, 11)
	for i := range arms {
		arms[i] = decision.Arm{ID: string(rune('a' + i))}
	}
	for _, bc := range []struct {
		name string
		ts   policy.TextSpec
		pol  string
	}{
		{"linucb/words1-2+chars3-4/32buckets", policy.TextSpec{Buckets: 32, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}, "linucb"},
		{"lin-thompson/words1-2/32buckets", policy.TextSpec{Buckets: 32, WordNgrams: 2, Markers: true}, "lin-thompson"},
		{"linear-router/words1-2+chars3-4/2048buckets", policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}, "linear-router"},
		{"linear-router/words1-2/2048buckets", policy.TextSpec{Buckets: 2048, WordNgrams: 2, Markers: true}, "linear-router"},
	} {
		for _, pc := range benchPrompts {
			b.Run(bc.name+"/"+pc.name, func(b *testing.B) {
				spec := policy.EncoderSpec{Intercept: true, Tasks: []string{"arc", "mbpp", "wino"}, TokenBuckets: []int{64, 256, 1024}, Text: &bc.ts}
				e, err := policy.NewEncoder(spec)
				require.NoError(b, err)
				var p policy.Policy
				if bc.pol == "linear-router" {
					ra := make([]policy.RouterArm, len(arms))
					for m := range ra {
						ra[m] = policy.RouterArm{ID: arms[m].ID, Quality: make([]float64, e.Dim()), Cost: make([]float64, e.Dim())}
						for i := range ra[m].Quality {
							ra[m].Quality[i] = float64((i*7+m)%13) / 13
							ra[m].Cost[i] = 1e-4 * float64((i+m)%5)
						}
					}
					p, err = policy.NewLinearRouter(policy.LinearRouterOpts{Dim: e.Dim(), Lambda: 20, Arms: ra})
				} else {
					p, err = policy.NewBuiltinRegistry().NewFromString(bc.pol + "=seed:1;dim:" + strconv.Itoa(e.Dim()))
				}
				require.NoError(b, err)
				f := &decision.Features{Task: "arc", PromptTokens: 512, Prompt: pc.prompt}
				probs := make([]float64, len(arms))
				ctx := context.Background()
				// Warm the policy so Select works on learned state.
				for i := range 50 {
					f.Vector = e.Encode(f, f.Vector)
					require.NoError(b, p.Update(f, arms, i%len(arms), 0.5))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					f.Vector = e.Encode(f, f.Vector)
					if _, err := p.Select(ctx, f, arms, probs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzTextEncode: any prompt encodes without panicking, with an n-gram
// block of L2 norm 1 (or 0 for no n-gram) and markers in [0,1], the same
// way twice.
func FuzzTextEncode(f *testing.F) {
	for _, s := range []string{"", " ", "a", "def f():\n  return 1", "Ünïcödé ✓", "\x00\xff\xfe", prompt2KB} {
		f.Add(s)
	}
	e := textEncoder(f, policy.TextSpec{Buckets: 64, WordNgrams: 3, CharMin: 1, CharMax: 8, Markers: true})
	f.Fuzz(func(t *testing.T, s string) {
		v := e.Encode(&decision.Features{Prompt: s}, nil)
		ss := 0.0
		for _, x := range v[1:65] {
			ss += x * x
		}
		if ss != 0 && math.Abs(ss-1) > 1e-9 {
			t.Fatalf("n-gram block norm² %v", ss)
		}
		for i, x := range v[65:] {
			if !(x >= 0 && x <= 1) {
				t.Fatalf("marker %s = %v", policy.TextMarkerNames[i], x)
			}
		}
		if w := e.Encode(&decision.Features{Prompt: s}, nil); !slicesEqual(v, w) {
			t.Fatal("two encodings differ")
		}
	})
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
