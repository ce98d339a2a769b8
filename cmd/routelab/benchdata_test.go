package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const benchTestdata = "../../datasets/testdata"

func TestBenchdataTable(t *testing.T) {
	var out bytes.Buffer
	fl := benchdataFlags{data: "routerbench", path: benchTestdata + "/routerbench_a.csv", policies: "random,epsilon-greedy=epsilon:0.1", seed: 3, passes: 2}
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	s := out.String()
	for _, want := range []string{"table routerbench: 2 rows (1 skipped", "random", "epsilon-greedy", "best fixed", "share m1", "always model", "oracle mean reward"} {
		assert.Contains(t, s, want)
	}
}

func TestBenchdataJSON(t *testing.T) {
	var out bytes.Buffer
	fl := benchdataFlags{data: "routellm", path: benchTestdata + "/mmlu", policies: "thompson,linucb", seed: 1, passes: 1,
		prices: map[string]string{"strong": "0.01"}, json: true}
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	var got struct {
		Table   string `json:"table"`
		Results []struct {
			Policy    string  `json:"policy"`
			Decisions int     `json:"decisions"`
			Oracle    float64 `json:"oracle_mean_reward"`
			Fixed     []struct {
				Model     string  `json:"model"`
				CostTotal float64 `json:"cost_total_usd"`
			} `json:"fixed"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, "routellm-mmlu", got.Table)
	require.Len(t, got.Results, 2)
	assert.Equal(t, "thompson", got.Results[0].Policy)
	assert.Equal(t, "linucb", got.Results[1].Policy)
	assert.Equal(t, 3, got.Results[1].Decisions)
	// prompt tokens 6+1+2 at $0.01 per 1k for "strong", nothing for "weak".
	assert.InDelta(t, 9.0/1000*0.01, got.Results[0].Fixed[1].CostTotal, 1e-12)
	assert.Zero(t, got.Results[0].Fixed[0].CostTotal)
}

func TestBenchdataErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("prompt,eval_name,m,m|total_cost\np,t,2,0\n"), 0o644))
	ok := benchTestdata + "/routerbench_a.csv"
	tests := []struct {
		name string
		fl   benchdataFlags
		msg  string
	}{
		{"unknown data", benchdataFlags{data: "glue", policies: "random", passes: 1}, `--data "glue"`},
		{"passes", benchdataFlags{data: "routerbench", path: ok, policies: "random", passes: 0}, "--passes 0"},
		{"policy spec", benchdataFlags{data: "routerbench", path: ok, policies: "nope", passes: 1}, "--policy nope"},
		{"no policy", benchdataFlags{data: "routerbench", path: ok, policies: "", passes: 1}, "--policy"},
		{"malformed file", benchdataFlags{data: "routerbench", path: bad, policies: "random", passes: 1}, bad + ":2:5: score \"2\""},
		{"missing path", benchdataFlags{data: "routellm", path: filepath.Join(dir, "none"), policies: "random", passes: 1}, "no such file"},
		{"bad price", benchdataFlags{data: "routerbench", path: ok, policies: "random", passes: 1, prices: map[string]string{"m1": "x"}}, "--price m1=x"},
		{"price model", benchdataFlags{data: "routerbench", path: ok, policies: "random", passes: 1, prices: map[string]string{"zz": "1"}}, `"zz": not a model`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runBenchdata(context.Background(), tc.fl, &bytes.Buffer{})
			assert.ErrorContains(t, err, tc.msg)
		})
	}
	// Without --path, $ROUTELAB_DATA (or ../shared/data) is searched; a
	// missing directory is an error that says where the data comes from.
	t.Setenv("ROUTELAB_DATA", t.TempDir())
	err := runBenchdata(context.Background(), benchdataFlags{data: "routerbench", policies: "random", passes: 1}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "$ROUTELAB_DATA")
	assert.ErrorContains(t, err, "RouterDC")
	assert.ErrorContains(t, err, "--path")
}

func TestBenchdataCmdFlags(t *testing.T) {
	cmd := newBenchdataCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--data", "routellm", "--path", benchTestdata + "/mmlu", "--policy", "random", "--no-shuffle", "--passes", "2"})
	require.NoError(t, cmd.Execute())
	assert.Contains(t, out.String(), "table routellm-mmlu: 3 rows")
	assert.Contains(t, out.String(), "2 pass(es)")
}

// TestBenchdataPrices: --price sets per-token or per-request costs, and a
// model not in the table, a malformed or a negative price is an error
// naming the flag and the value.
func TestBenchdataPrices(t *testing.T) {
	run := func(prices map[string]string) (float64, float64, error) {
		var out bytes.Buffer
		fl := benchdataFlags{data: "routellm", path: benchTestdata + "/mmlu", policies: "random", seed: 1, passes: 1, prices: prices, json: true}
		if err := runBenchdata(context.Background(), fl, &out); err != nil {
			return 0, 0, err
		}
		var got struct {
			Results []struct {
				Fixed []struct {
					CostTotal float64 `json:"cost_total_usd"`
				} `json:"fixed"`
			} `json:"results"`
		}
		require.NoError(t, json.Unmarshal(out.Bytes(), &got))
		return got.Results[0].Fixed[0].CostTotal, got.Results[0].Fixed[1].CostTotal, nil
	}
	// Three prompts: "strong" at $0.002 a call, "weak" at $0.01 per 1k
	// prompt tokens (6+1+2 tokens).
	weak, strong, err := run(map[string]string{"strong": "0.002/request", "weak": "0.01"})
	require.NoError(t, err)
	assert.InDelta(t, 3*0.002, strong, 1e-12)
	assert.InDelta(t, 9.0/1000*0.01, weak, 1e-12)

	for _, tc := range []struct {
		price map[string]string
		msg   string
	}{
		{map[string]string{"gpt-5": "0.01/request"}, `--price gpt-5=0.01/request: model "gpt-5": not a model of table routellm-mmlu (models [weak strong])`},
		{map[string]string{"strong": "0.01/req"}, "--price strong=0.01/req: want MODEL=USD (per 1,000 prompt tokens) or MODEL=USD/request"},
		{map[string]string{"strong": "cheap/request"}, "--price strong=cheap/request: want MODEL=USD"},
		{map[string]string{"strong": ""}, "--price strong=: want MODEL=USD"},
		{map[string]string{"": "1"}, "--price =1: want MODEL=USD"},
		{map[string]string{"strong": "-1/request"}, "--price strong=-1/request: must be a finite number >= 0"},
		{map[string]string{"strong": "NaN"}, "--price strong=NaN: must be a finite number >= 0"},
		{map[string]string{"strong": "Inf"}, "--price strong=Inf: must be a finite number >= 0"},
	} {
		_, _, err := run(tc.price)
		assert.ErrorContains(t, err, tc.msg, "%v", tc.price)
	}
	// Without "=", the flag parser rejects the value.
	cmd := newBenchdataCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"--data", "routellm", "--path", benchTestdata + "/mmlu", "--price", "strong"})
	err = cmd.Execute()
	assert.ErrorContains(t, err, `"strong" for "--price" flag`)
}
