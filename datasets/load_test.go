package datasets

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadRouterBench(t *testing.T) {
	tb, err := LoadRouterBench("testdata/routerbench_a.csv", "testdata/routerbench_b.csv")
	require.NoError(t, err)
	assert.Equal(t, "routerbench", tb.Name)
	assert.Equal(t, []string{"m1", "m2"}, tb.Models)
	assert.Equal(t, 1, tb.Skipped, "row s.3 lacks m2's score")
	want := []Row{
		{ID: "s.1", Task: "arith", PromptTokens: 7, Prompt: "What is 2+2?\nSay \"4\", please.", Scores: []float64{1, 0}, Costs: []float64{0.0001, 0.002}},
		{ID: "s.2", Task: "arith", PromptTokens: 2, Prompt: "abcdefgh", Scores: []float64{0.5, 1}, Costs: []float64{0.0002, 0.003}},
		// file b lists m2 first: columns are matched by name.
		{ID: "t.1", Task: "logic", PromptTokens: 3, Prompt: "twelve chars", Scores: []float64{1, 1}, Costs: []float64{1e-4, 0.004}},
	}
	assert.Equal(t, want, tb.Rows)
	assert.Equal(t, []string{"arith", "logic"}, tb.Tasks())
}

func TestLoadRouteLLM(t *testing.T) {
	tb, err := LoadRouteLLM("testdata/mmlu")
	require.NoError(t, err)
	assert.Equal(t, "routellm-mmlu", tb.Name)
	assert.Equal(t, []string{"weak", "strong"}, tb.Models)
	want := []Row{
		{ID: "algebra/0", Task: "algebra", PromptTokens: 6, Prompt: "Q1, with comma\nA. x\nAnswer:", Scores: []float64{1, 1}, Costs: []float64{0, 0}},
		{ID: "algebra/1", Task: "algebra", PromptTokens: 1, Prompt: "abcd", Scores: []float64{0, 1}, Costs: []float64{0, 0}},
		{ID: "zoo/0", Task: "zoo", PromptTokens: 2, Prompt: "12345678", Scores: []float64{1, 0}, Costs: []float64{0, 0}},
	}
	assert.Equal(t, want, tb.Rows)

	require.NoError(t, tb.WithPromptPrices(map[string]float64{"strong": 0.01}))
	assert.InDelta(t, 6.0/1000*0.01, tb.Rows[0].Costs[1], 1e-15)
	assert.Zero(t, tb.Rows[0].Costs[0])
	assert.Error(t, tb.WithPromptPrices(map[string]float64{"nope": 1}))
	assert.Error(t, tb.WithPromptPrices(map[string]float64{"weak": -1}))
	// Per request: the same cost on every row, whatever its length.
	require.NoError(t, tb.WithRequestPrices(map[string]float64{"weak": 0.002}))
	for _, r := range tb.Rows {
		assert.Equal(t, 0.002, r.Costs[0])
	}
	assert.ErrorContains(t, tb.WithRequestPrices(map[string]float64{"nope": 1}), `"nope": not a model`)
	assert.ErrorContains(t, tb.WithRequestPrices(map[string]float64{"weak": math.Inf(1)}), "finite")
	assert.Equal(t, 0.002, tb.Rows[0].Costs[0], "a rejected price changes nothing")
}

func TestParseErrors(t *testing.T) {
	const hdr = "sample_id,prompt,eval_name,m1,m1|total_cost\n"
	tests := []struct {
		name, in   string
		routellm   bool
		line, col  int
		msg        string
		noPosition bool
	}{
		{name: "score above 1", in: hdr + "a,p,t,1.5,0.1\n", line: 2, col: 7, msg: "score \"1.5\""},
		{name: "score not a number", in: hdr + "a,p,t,x,0.1\n", line: 2, col: 7, msg: "want a number in [0,1]"},
		{name: "score NaN", in: hdr + "a,p,t,NaN,0.1\n", line: 2, col: 7, msg: "score \"NaN\""},
		{name: "negative cost", in: hdr + "a,p,t,1,-0.1\n", line: 2, col: 9, msg: "cost \"-0.1\""},
		{name: "bad cost", in: hdr + "a,p,t,1,$3\n", line: 2, col: 9, msg: "cost \"$3\""},
		{name: "field count", in: hdr + "a,p,t,1\n", line: 2, col: 1, msg: "wrong number of fields"},
		{name: "bare quote", in: hdr + "a,p\"q,t,1,0.1\n", line: 2, col: 4, msg: "bare \""},
		{name: "cost without score", in: "prompt,eval_name,m1|total_cost\n", line: 1, col: 18, msg: "no score column \"m1\""},
		{name: "no models", in: "prompt,eval_name,m1\n", line: 1, msg: "no model columns"},
		{name: "no prompt", in: "eval_name,m1,m1|total_cost\n", line: 1, msg: "no \"prompt\" column"},
		{name: "empty", in: "", line: 1, msg: "empty file"},
		{name: "mmlu flag", in: "prompt,a,b\np,True,maybe\n", routellm: true, line: 2, col: 8, msg: "correctness \"maybe\""},
		{name: "mmlu header", in: "question,a\n", routellm: true, line: 1, col: 1, msg: "want \"prompt\""},
		{name: "mmlu no models", in: "prompt\n", routellm: true, line: 1, msg: "no model columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parse := ParseRouterBench
			if tc.routellm {
				parse = ParseRouteLLM
			}
			err := parse(strings.NewReader(tc.in), "f.csv", &Table{})
			require.Error(t, err)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "got %T %v, want *ParseError", err, err)
			assert.ErrorIs(t, err, ErrFormat)
			assert.Equal(t, "f.csv", pe.File)
			assert.Equal(t, tc.line, pe.Line, "line of %v", err)
			assert.Equal(t, tc.col, pe.Column, "column of %v", err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestLoadMismatchedModels(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.csv")
	b := filepath.Join(dir, "b.csv")
	require.NoError(t, os.WriteFile(a, []byte("prompt,eval_name,m1,m1|total_cost\np,t,1,0\n"), 0o644))
	require.NoError(t, os.WriteFile(b, []byte("prompt,eval_name,m2,m2|total_cost\np,t,1,0\n"), 0o644))
	_, err := LoadRouterBench(a, b)
	require.Error(t, err)
	// The error names the file, line 1 and the column of m2's score.
	assert.Contains(t, err.Error(), b+":1:18: header: model \"m2\" is not one of the expected models [m1]")

	_, err = LoadRouterBench(filepath.Join(dir, "missing.csv"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = LoadRouterBench(t.TempDir())
	assert.ErrorContains(t, err, "no *.csv file")
	_, err = LoadRouterBench()
	assert.Error(t, err)
}

// sharedData is the reference data beside the repository
// (/work/shared/data next to /work/main); tests skip without it.
func sharedData(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "data", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s absent: %v", p, err)
	}
	return p
}

func TestLoadRealData(t *testing.T) {
	t.Run("routerbench", func(t *testing.T) {
		tb, err := LoadRouterBench(sharedData(t, "routerbench"))
		require.NoError(t, err)
		assert.Len(t, tb.Models, 11)
		assert.Equal(t, []string{"arc-challenge", "mbpp", "winogrande"}, tb.Tasks())
		assert.Equal(t, 1039+299+887, len(tb.Rows)+tb.Skipped)
		assert.Equal(t, 20, tb.Skipped)
	})
	t.Run("routellm", func(t *testing.T) {
		tb, err := LoadRouteLLM(sharedData(t, "routellm/mmlu"))
		require.NoError(t, err)
		assert.Equal(t, []string{"mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"}, tb.Models)
		assert.Len(t, tb.Tasks(), 57)
		assert.Len(t, tb.Rows, 8818+2497+1985+742)
	})
}

func FuzzParseRouterBench(f *testing.F) {
	for _, p := range []string{"testdata/routerbench_a.csv", "testdata/routerbench_b.csv"} {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("prompt,eval_name,m|total_cost,m\n\"a\"\"b\",t,0.1,1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var tb Table
		err := ParseRouterBench(strings.NewReader(string(in)), "fuzz.csv", &tb)
		if err != nil {
			return
		}
		for _, r := range tb.Rows {
			require.Len(t, r.Scores, len(tb.Models))
			require.Len(t, r.Costs, len(tb.Models))
			for i := range r.Scores {
				require.True(t, r.Scores[i] >= 0 && r.Scores[i] <= 1, "score %v", r.Scores[i])
				require.True(t, r.Costs[i] >= 0, "cost %v", r.Costs[i])
			}
		}
	})
}

func FuzzParseRouteLLM(f *testing.F) {
	b, err := os.ReadFile("testdata/mmlu/mmlu_algebra.csv")
	require.NoError(f, err)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		var tb Table
		if err := ParseRouteLLM(strings.NewReader(string(in)), "mmlu_x.csv", &tb); err != nil {
			return
		}
		for _, r := range tb.Rows {
			require.Len(t, r.Scores, len(tb.Models))
		}
	})
}
