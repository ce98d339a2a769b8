package main

import (
	"bytes"
	"context"
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
	"github.com/routelab/routelab/gateway"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cascadeAnswers is what models c1, c2 and dear answer (and whether it is
// right) on a prompt of each kind: on "easy" prompts the cheap models
// both answer right; on "mixed" ones, every other prompt, they both answer
// right, else differently and wrongly (only dear is right); on "hard" ones
// they agree on a wrong answer.
func cascadeAnswers(kind string, i int) (c1, c2, dear string, s1, s2 int) {
	switch {
	case kind == "easy" || (kind == "mixed" && i%2 == 0):
		return "A", "A)", "A", 1, 1
	case kind == "mixed":
		return "B", "C", "A", 0, 0
	}
	return "B", "B", "A", 0, 0
}

// writeCascadeBench writes a RouterBench CSV (with response columns) of n
// prompts of the three kinds. Costs: c1 $0.0001, c2 $0.002, dear $0.03.
func writeCascadeBench(t *testing.T, path string, n, off int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("sample_id,prompt,eval_name,c1,c2,dear,c1|model_response,c2|model_response,dear|model_response,c1|total_cost,c2|total_cost,dear|total_cost\n")
	for i := off; i < off+n; i++ {
		kind := []string{"easy", "mixed", "hard"}[i%3]
		a1, a2, ad, s1, s2 := cascadeAnswers(kind, i/3)
		fmt.Fprintf(&b, "id%d,question %d is %s,qa,%d,%d,1,\"['%s']\",\"['%s']\",\"['%s']\",0.0001,0.002,0.03\n", i, i, kind, s1, s2, a1, a2, ad)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

// TestCascadeRouterServedByGateway: a router trained with --cascade on a
// table sends each kind of prompt where it pays (easy → c1, mixed → the
// cascade, hard → dear), and the gateway serves that artifact with the
// cascade as a catalogue model whose members answer as in the table.
func TestCascadeRouterServedByGateway(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeCascadeBench(t, train, 180, 0)
	writeCascadeBench(t, test, 30, 3000)
	art := filepath.Join(dir, "router.json")
	var out bytes.Buffer
	fl := benchdataFlags{data: "routerbench", seed: 1, json: true, cascades: []string{"c1+c2>dear"}, ho: heldoutFlags{train: train, test: test, seeds: 1,
		learners: "ridge", textBuckets: 64, textWords: 1, banditBuckets: 16, banditPasses: 1, budgetShare: -1,
		savePolicy: art, saveLearner: "logistic", saveLambda: 20}}
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	const cas = "cascade(c1+c2>dear)"
	var sum struct {
		Fixed []struct {
			Model   string  `json:"model"`
			Quality float64 `json:"quality"`
			Cost    float64 `json:"cost"`
		} `json:"fixed"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &sum))
	require.Len(t, sum.Fixed, 4)
	assert.Equal(t, cas, sum.Fixed[3].Model)
	// test ids 3000..3029: 10 easy, 10 mixed (5 agree), 10 hard: the
	// cascade is right on easy and mixed, and pays dear on 5 mixed prompts.
	assert.InDelta(t, 20.0/30, sum.Fixed[3].Quality, 1e-12)
	assert.InDelta(t, 0.0021+5*0.03/30, sum.Fixed[3].Cost, 1e-12)

	a, err := artifact.Read(art)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"c1", "c2", "dear", cas}, a.Catalogue)

	// The members answer as in the table, by prompt.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model    string `json:"model"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		var i int
		var kind string
		_, err := fmt.Sscanf(body.Messages[0].Content, "question %d is %s", &i, &kind)
		require.NoError(t, err)
		a1, a2, ad, _, _ := cascadeAnswers(kind, i/3)
		ans := map[string]string{"c1": a1, "c2": a2, "dear": ad}[body.Model]
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}`, body.Model, ans)
	}))
	defer up.Close()
	enc, err := json.Marshal(a.Encoder)
	require.NoError(t, err)
	rw, err := json.Marshal(a.Reward)
	require.NoError(t, err)
	cfg, err := gateway.ParseConfig([]byte(`providers: [{name: up, type: openai, base_url: "` + up.URL + `", health_check: false}]
models:
  - {id: c1, provider: up, price_in: 0.01}
  - {id: c2, provider: up, price_in: 0.2}
  - {id: dear, provider: up, price_in: 1}
  - {id: "` + cas + `", cascade: {agree: [c1, c2], escalate: dear}}
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
	for _, c := range []struct{ prompt, model, answer string }{
		{"question 6000 is easy", "c1", "A"},
		{"question 6004 is mixed", cas, "A"}, // 6004/3 = 2001, odd: c1 and c2 disagree, dear answers
		{"question 6001 is mixed", cas, "A"}, // 2000, even: they agree
		{"question 6002 is hard", "dear", "A"},
	} {
		body := fmt.Sprintf(`{"model":"auto","messages":[{"role":"user","content":%q}]}`, c.prompt)
		res, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "%s", b)
		assert.Equal(t, c.model, res.Header.Get("X-Routelab-Model"), c.prompt)
		var v struct {
			Model   string `json:"model"`
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(b, &v))
		assert.Equal(t, c.model, v.Model)
		assert.Equal(t, c.answer, v.Choices[0].Message.Content, c.prompt)
	}
}

// TestSimDatasetCascade: sim --dataset --cascade runs the cascade as one
// more arm; the best single model is a model, never the cascade.
func TestSimDatasetCascade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.csv")
	writeCascadeBench(t, path, 60, 0)
	var out bytes.Buffer
	require.NoError(t, runSim(context.Background(), simFlags{dataset: "routerbench:" + path, policy: "linucb", seed: 1, json: true,
		cascades: []string{"c1+c2>dear"}}, nil, &out))
	var got struct {
		Shares map[string]float64 `json:"arm_shares"`
		Best   string             `json:"best_single_model"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Contains(t, got.Shares, "cascade(c1+c2>dear)")
	assert.Equal(t, "dear", got.Best)

	// On this table the cascade's mean score (0.875) beats every model's
	// (c: 0.75); the best single model is still c.
	out.Reset()
	require.NoError(t, runSim(context.Background(), simFlags{dataset: "routerbench:../../datasets/testdata/routerbench_cascade.csv", policy: "random", seed: 1, json: true,
		cascades: []string{"a+b>c"}}, nil, &out))
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, "c", got.Best, "a cascade is not a single model")

	err := runSim(context.Background(), simFlags{scenario: "steady", policy: "random", cascades: []string{"auto"}}, nil, &out)
	assert.ErrorContains(t, err, "only with --dataset")
	err = runSim(context.Background(), simFlags{dataset: "routerbench:" + path, policy: "random", cascades: []string{"c1+zz>dear"}}, nil, &out)
	assert.ErrorContains(t, err, `model "zz" is not one of`)
}
