package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/gateway"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeBench writes a RouterBench-format CSV of n rows where "dear" alone
// solves prompts containing "hard".
func writeBench(t *testing.T, path string, n, off int, models ...string) {
	t.Helper()
	if len(models) == 0 {
		models = []string{"cheap", "dear"}
	}
	var b strings.Builder
	b.WriteString("sample_id,prompt,eval_name")
	for _, m := range models {
		b.WriteString("," + m)
	}
	for _, m := range models {
		b.WriteString("," + m + "|total_cost")
	}
	b.WriteString("\n")
	for i := off; i < off+n; i++ {
		hard := i%3 == 0
		word, cheap := "easy", "1"
		if hard {
			word, cheap = "hard", "0"
		}
		fmt.Fprintf(&b, "id%d,question %d is %s,%s,%s,1,0.0001,0.01\n", i, i, word, []string{"qa", "code"}[i%2], cheap)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

func TestBenchdataHeldout(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeBench(t, train, 120, 0)
	writeBench(t, test, 30, 1000)
	choices := filepath.Join(dir, "choices.csv")
	var out bytes.Buffer
	fl := benchdataFlags{data: "routerbench", seed: 1, json: true, ho: heldoutFlags{train: train, test: test, seeds: 2,
		learners: "task-mean,ridge", textBuckets: 64, textWords: 1, exportChoices: choices, out: filepath.Join(dir, "rep"),
		bandit: "linucb", banditLambda: 20, banditBuckets: 16, banditPasses: 3}}
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	var got struct {
		Strong   string `json:"strongest_model"`
		Learners []struct {
			Learner string `json:"learner"`
			CPT     []struct {
				Mean *float64 `json:"mean"`
			} `json:"cpt"`
		} `json:"learners"`
		Bandits []struct {
			Policy string `json:"policy"`
		} `json:"bandits"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	assert.Equal(t, "dear", got.Strong)
	require.Len(t, got.Learners, 2)
	require.Len(t, got.Bandits, 1)
	// ridge sends only "hard" prompts (a third) to dear: 95% of its
	// quality at about a third of its cost.
	require.NotNil(t, got.Learners[1].CPT[3].Mean)
	assert.Less(t, *got.Learners[1].CPT[3].Mean, 0.5)

	f, err := os.Open(choices)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, []string{"sample_id", "eval_name", "lambda", "model"}, recs[0])
	assert.Len(t, recs, 1+30*len(datasets.DefaultLambdas), "one row per test prompt and λ")
	for _, name := range []string{"report.md", "report.html", "curve.svg", "heldout.json"} {
		b, err := os.ReadFile(filepath.Join(dir, "rep", name))
		require.NoError(t, err, name)
		assert.NotEmpty(t, b)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "rep", "report.html"))
	assert.Contains(t, string(html), "<svg")
}

func TestBenchdataHeldoutErrors(t *testing.T) {
	dir := t.TempDir()
	train, other := filepath.Join(dir, "train.csv"), filepath.Join(dir, "other.csv")
	writeBench(t, train, 30, 0)
	writeBench(t, other, 10, 100, "cheap", "gpt")
	missing := filepath.Join(dir, "missing.csv")
	require.NoError(t, os.WriteFile(missing, []byte("sample_id,prompt,eval_name,cheap,dear,cheap|total_cost,dear|total_cost\na,p,qa,1,1,0.1,0.2\nb,p,qa,,1,0.1,0.2\n"), 0o644))
	base := heldoutFlags{seeds: 1, learners: "task-mean", textBuckets: 16, textWords: 1, banditBuckets: 16, banditPasses: 1}
	tests := []struct {
		name string
		ho   func(h *heldoutFlags)
		want string
	}{
		{"test models differ", func(h *heldoutFlags) { h.train, h.test = train, other }, other + ":1:"},
		{"missing score", func(h *heldoutFlags) { h.train, h.test = train, missing }, missing + ":3:8: score of model \"cheap\" is empty"},
		{"train without test", func(h *heldoutFlags) { h.train = train }, "--train and --test go together"},
		{"bad split", func(h *heldoutFlags) { h.split = 1.5 }, "split 1.5"},
		{"bad chars", func(h *heldoutFlags) { h.train, h.test, h.textChars = train, train, "x" }, "--text-chars"},
		{"unknown learner", func(h *heldoutFlags) { h.train, h.test, h.learners = train, train, "magic" }, `learner "magic"`},
		{"bad budget target", func(h *heldoutFlags) { h.train, h.test, h.budgetTarget = train, train, -0.5 }, "budget target -0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := base
			tc.ho(&h)
			fl := benchdataFlags{data: "routerbench", path: train, seed: 1, ho: h}
			err := runBenchdata(context.Background(), fl, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestBenchdataBudgetTarget: --budget-target calibrates each learner's
// limit on the training part; the summary gives the target, each
// learner's limit and validation spend, and the text a "limit" column.
func TestBenchdataBudgetTarget(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeBench(t, train, 120, 0)
	writeBench(t, test, 30, 1000)
	ho := heldoutFlags{train: train, test: test, seeds: 2, learners: "task-mean,ridge", textBuckets: 64, textWords: 1,
		budgetShare: datasets.BudgetShare, budgetTarget: 0.2, banditBuckets: 16, banditPasses: 1}
	var out bytes.Buffer
	require.NoError(t, runBenchdata(context.Background(), benchdataFlags{data: "routerbench", seed: 1, json: true, ho: ho}, &out))
	type iv struct {
		Mean *float64 `json:"mean"`
	}
	var got struct {
		Target   float64 `json:"budget_router_target"`
		Share    float64 `json:"budget_router_share"`
		Learners []struct {
			Limit   iv `json:"budget_router_limit_share"`
			ValCost iv `json:"budget_router_validation_cost_share"`
		} `json:"learners"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	assert.Equal(t, 0.2, got.Target)
	assert.Zero(t, got.Share, "no fixed share when calibrated")
	require.Len(t, got.Learners, 2)
	for _, l := range got.Learners {
		require.NotNil(t, l.Limit.Mean)
		require.NotNil(t, l.ValCost.Mean)
		assert.LessOrEqual(t, *l.ValCost.Mean, 0.2+1e-9, "validation spend within the target")
		assert.Greater(t, *l.Limit.Mean, 0.0)
	}
	out.Reset()
	require.NoError(t, runBenchdata(context.Background(), benchdataFlags{data: "routerbench", seed: 1, ho: ho}, &out))
	assert.Contains(t, out.String(), "limit (validation spend)")
	assert.Contains(t, out.String(), "each learner's limit calibrated on the training part alone")
}

// TestSavedRouterServedByGateway: benchdata --save-policy writes a
// linear-router artifact; a gateway with its encoder block (IDF included),
// reward and models serves it and routes a "hard" prompt to the model that
// solves it and an "easy" one to the cheap model.
func TestSavedRouterServedByGateway(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeBench(t, train, 150, 0)
	writeBench(t, test, 30, 1000)
	art := filepath.Join(dir, "router.json")
	fl := benchdataFlags{data: "routerbench", seed: 1, ho: heldoutFlags{train: train, test: test, seeds: 1,
		learners: "task-mean", textBuckets: 64, textWords: 1, banditBuckets: 16, banditPasses: 1,
		savePolicy: art, saveLearner: "logistic", saveLambda: 20}}
	require.NoError(t, runBenchdata(context.Background(), fl, &bytes.Buffer{}))
	a, err := artifact.Read(art)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(a.Spec, "linear-router"), a.Spec)
	require.NotNil(t, a.Encoder.Text)
	assert.Len(t, a.Encoder.Text.IDF, 64)

	enc, err := json.Marshal(a.Encoder)
	require.NoError(t, err)
	rw, err := json.Marshal(a.Reward)
	require.NoError(t, err)
	cfg, err := gateway.ParseConfig([]byte(`providers: [{name: sim, type: sim, time_scale: 0.001}]
models:
  - {id: cheap, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}
  - {id: dear, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}
log: {dir: ""}
encoder: ` + string(enc) + `
reward: ` + string(rw) + `
policy: {file: ` + art + `}
`))
	require.NoError(t, err)
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: newRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, c := range []struct{ prompt, task, want string }{
		{"question 2001 is hard", "qa", "dear"},
		{"question 2002 is easy", "code", "cheap"},
		{"question 2003 is hard", "code", "dear"},
	} {
		body := fmt.Sprintf(`{"model":"auto","messages":[{"role":"user","content":%q}]}`, c.prompt)
		req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(gateway.HeaderTask, c.task)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, c.want, res.Header.Get("X-Routelab-Model"), c.prompt)
		assert.Equal(t, "linear-router", res.Header.Get("X-Routelab-Policy"))
	}
}

// TestSimDataset: sim --dataset runs a benchmark table with sim's keys and
// the table's references.
func TestSimDataset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.csv")
	writeBench(t, path, 60, 0)
	var out bytes.Buffer
	require.NoError(t, runSim(context.Background(), simFlags{dataset: "routerbench:" + path, policy: "linucb", seed: 1, json: true}, nil, &out))
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	for _, k := range []string{"policy", "scenario", "seed", "requests", "mean_reward", "oracle_mean_reward", "regret", "cost_total", "arm_shares",
		"mean_quality", "best_single_model", "best_single_quality", "best_single_cost", "oracle_quality", "apgr"} {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, "dear", got["best_single_model"])
	assert.InDelta(t, 1, got["best_single_quality"], 1e-12)
	assert.InDelta(t, 0.01, got["best_single_cost"], 1e-12)
	assert.InDelta(t, 1, got["oracle_quality"], 1e-12)
	assert.InDelta(t, 60, got["requests"], 0)

	err := runSim(context.Background(), simFlags{dataset: "nope:" + path, policy: "linucb"}, nil, &out)
	assert.ErrorContains(t, err, "want routerbench:PATH or routellm:PATH")
}
