package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decisionlog"
)

// TestTrainOfflineServeWarm is the loop's must-show: a sim run of an
// exploring logger writes a decision log, train fits linucb to it and
// writes an artifact, and a sim run starting from the artifact is within
// 1% of the oracle from its first request on (a fresh linucb is not).
func TestTrainOfflineServeWarm(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "L")
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logs, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "epsilon-greedy=epsilon:0.2", seed: 1, requests: 30000}, w, &bytes.Buffer{}))
	require.NoError(t, w.Close())

	art := filepath.Join(dir, "a.json")
	var out bytes.Buffer
	require.NoError(t, runTrain(context.Background(), trainFlags{logs: []string{logs}, policy: "linucb", out: art, seed: 1, quiet: true}, &out, &bytes.Buffer{}))
	a, err := artifact.Read(art)
	require.NoError(t, err)
	assert.Equal(t, "train", a.Provenance.Source)
	assert.EqualValues(t, 30000, a.Provenance.Rows)
	assert.NotNil(t, a.Provenance.From)
	assert.Equal(t, []string{"chatty", "coder", "generalist", "mathlete", "summarizer"}, a.Catalogue)

	warm := simJSON(t, simFlags{scenario: "tasks", policyFile: art, seed: 1, requests: 1000})
	cold := simJSON(t, simFlags{scenario: "tasks", policy: "linucb", seed: 1, requests: 1000})
	ratio := func(m map[string]any) float64 {
		return m["expected_mean_reward"].(float64) / m["oracle_mean_reward"].(float64)
	}
	t.Logf("first 1000 requests: warm %.4f of oracle, cold %.4f", ratio(warm), ratio(cold))
	assert.GreaterOrEqual(t, ratio(warm), 0.99, "warm start from the artifact")
	assert.Less(t, ratio(cold), 0.99, "a fresh linucb must not pass the bar, or the test shows nothing")

	// Same artifact, same seed: identical decisions.
	again := simJSON(t, simFlags{scenario: "tasks", policyFile: art, seed: 1, requests: 1000})
	delete(warm, "decisions_per_second")
	delete(again, "decisions_per_second")
	assert.Equal(t, warm, again)

	// sim --save-policy writes an artifact that continues where the run ended.
	saved := filepath.Join(dir, "b.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policyFile: art, seed: 2, requests: 500, savePolicy: saved}, nil, &bytes.Buffer{}))
	b, err := artifact.Read(saved)
	require.NoError(t, err)
	assert.Equal(t, "sim", b.Provenance.Source)
	assert.Equal(t, a.Spec, b.Spec)
	assert.NotEqual(t, a.StateSHA256, b.StateSHA256, "the run learned")

	// replay evaluates it frozen.
	out.Reset()
	rf := replayFlags{logs: []string{logs}, policyFiles: []string{art}, estimators: "snips", bootstrap: 0, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 1}
	require.NoError(t, runReplay(context.Background(), rf, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "@a.json")

	// policies list shows both with their provenance.
	out.Reset()
	require.NoError(t, listArtifacts(dir, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "a.json")
	assert.Contains(t, out.String(), "train")
	assert.Contains(t, out.String(), "30000")
	assert.Contains(t, out.String(), "b.json")
}

func TestPolicyFileBadInputs(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "a.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "linucb", seed: 1, requests: 300, savePolicy: art}, nil, &bytes.Buffer{}))
	data, err := os.ReadFile(art)
	require.NoError(t, err)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	scenarioFile := write("tasks-cost.yaml", strings.Replace(string(mustScenarioYAML(t, "tasks")), "\ntraffic:", "\nreward: {cost: 0.5}\ntraffic:", 1))
	otherArms := strings.Replace(string(mustScenarioYAML(t, "tasks")), "- name: chatty", "- name: talker", 1)
	require.NotEqual(t, string(mustScenarioYAML(t, "tasks")), otherArms)
	armsFile := write("tasks-arms.yaml", otherArms)
	cases := []struct {
		name, scenario, file string
		want                 []string
	}{
		{"other encoder", "steady", art, []string{"encoder", `"math"`, `"tasks":["chat","code","summarize"]`}},
		{"other reward", scenarioFile, art, []string{"reward", "cost 0.2", "cost 0.5"}},
		{"other catalogue", armsFile, art, []string{"catalogue", "[chatty coder generalist mathlete summarizer]", "[coder generalist mathlete summarizer talker]"}},
		{"truncated", "tasks", write("t.json", string(data[:len(data)/3])), []string{"truncated or corrupt"}},
		{"unknown version", "tasks", write("v.json", strings.Replace(string(data), `"version": 1,`, `"version": 99,`, 1)), []string{"version 99, this build reads version 1"}},
		{"unknown policy", "tasks", write("p.json", renamePolicy(t, data, "linucb", "nosuch")), []string{"nosuch"}},
		{"unknown state version", "tasks", write("sv.json", editState(t, data, `"version":1`, `"version":7`)), []string{"version 7, this build reads version 1"}},
		{"missing", "tasks", filepath.Join(dir, "none.json"), []string{"no such file"}},
	}
	for _, c := range cases {
		err := runSim(context.Background(), simFlags{scenario: c.scenario, policyFile: c.file, seed: 1, requests: 10}, nil, &bytes.Buffer{})
		if assert.Error(t, err, c.name) {
			assert.Contains(t, err.Error(), "--policy-file", c.name)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w, c.name)
			}
		}
	}
}

func mustScenarioYAML(t *testing.T, name string) []byte {
	t.Helper()
	var out bytes.Buffer
	cmd := newScenariosCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--show", name})
	require.NoError(t, cmd.Execute())
	return out.Bytes()
}

// renamePolicy rewrites an artifact to name another policy, keeping it
// internally consistent (spec, state and checksum).
func renamePolicy(t *testing.T, data []byte, from, to string) string {
	t.Helper()
	return rewriteState(t, data, `"policy":"`+from+`"`, `"policy":"`+to+`"`, func(a *artifact.Artifact) { a.Spec = strings.Replace(a.Spec, from, to, 1) })
}

// editState replaces the first from in an artifact's state by to and
// recomputes the checksum (a state another build wrote).
func editState(t *testing.T, data []byte, from, to string) string {
	t.Helper()
	return rewriteState(t, data, from, to, func(*artifact.Artifact) {})
}

func rewriteState(t *testing.T, data []byte, from, to string, edit func(*artifact.Artifact)) string {
	t.Helper()
	a, err := artifact.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.Contains(t, string(a.State), from)
	a.State = json.RawMessage(strings.Replace(string(a.State), from, to, 1))
	edit(a)
	sum := sha256.Sum256(a.State)
	a.StateSHA256 = hex.EncodeToString(sum[:])
	var out bytes.Buffer
	require.NoError(t, a.Encode(&out))
	return out.String()
}

func TestTrainRecordsScenarioOrRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "L")
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logs, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "random", seed: 1, requests: 500}, w, &bytes.Buffer{}))
	require.NoError(t, w.Close())

	art := filepath.Join(dir, "a.json")
	fl := trainFlags{logs: []string{logs}, policy: "linucb", out: art, seed: 1, quiet: true, scenario: "tasks"}
	require.NoError(t, runTrain(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{}))
	a, err := artifact.Read(art)
	require.NoError(t, err)
	assert.Equal(t, "tasks", a.Provenance.Scenario)

	// steady's encoder has another task vocabulary: the logged vectors do
	// not fit it, and no artifact is written.
	fl.scenario, fl.out = "steady", filepath.Join(dir, "b.json")
	err = runTrain(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "feature vectors")
	assert.Contains(t, err.Error(), "steady")
	_, err = os.Stat(fl.out)
	assert.True(t, os.IsNotExist(err))
}

// TestReplayPolicyFileMismatch: replay --policy-file on logs written with
// another encoder, or naming arms the artifact does not know, is an error
// naming both sides, not an estimate.
func TestReplayPolicyFileMismatch(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "L")
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logs, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "epsilon-greedy=epsilon:0.3", seed: 1, requests: 300}, w, &bytes.Buffer{}))
	require.NoError(t, w.Close())
	steady := filepath.Join(dir, "steady.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "steady", policy: "linucb", seed: 1, requests: 200, savePolicy: steady}, nil, &bytes.Buffer{}))
	tasks := filepath.Join(dir, "tasks.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "linucb", seed: 1, requests: 200, savePolicy: tasks}, nil, &bytes.Buffer{}))
	data, err := os.ReadFile(tasks)
	require.NoError(t, err)
	a, err := artifact.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	a.Catalogue = []string{"chatty", "coder", "generalist", "mathlete", "other"}
	otherCat := filepath.Join(dir, "cat.json")
	require.NoError(t, artifact.Write(otherCat, a))

	rf := replayFlags{logs: []string{logs}, estimators: "snips", bootstrap: 0, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 1}
	for _, c := range []struct {
		file string
		want []string
	}{
		{steady, []string{"steady.json", "feature vectors have", "slots", `"tasks":["chat","code","summarize"]`}},
		{otherCat, []string{"cat.json", `arm "summarizer"`, "[chatty coder generalist mathlete other]"}},
	} {
		fl := rf
		fl.policyFiles = []string{c.file}
		var out bytes.Buffer
		err := runReplay(context.Background(), fl, &out, &bytes.Buffer{})
		if assert.Error(t, err, c.file) {
			assert.ErrorIs(t, err, artifact.ErrMismatch)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w, c.file)
			}
		}
		assert.NotContains(t, out.String(), "@", "no estimate printed")
	}
	fl := rf
	fl.policyFiles = []string{tasks}
	require.NoError(t, runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{}), "the matching artifact evaluates")
}

// TestServeRefusesBadArtifact: `routelab serve` with a policy or shadow
// file that is truncated, of another version or for other models exits
// with an error naming the config field and the fault, before listening.
func TestServeRefusesBadArtifact(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "a.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "linucb", seed: 1, requests: 200, savePolicy: art}, nil, &bytes.Buffer{}))
	data, err := os.ReadFile(art)
	require.NoError(t, err)
	example, err := os.ReadFile("../../examples/gateway/tasks.yaml")
	require.NoError(t, err)
	steady := filepath.Join(dir, "steady.json")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "steady", policy: "linucb", seed: 1, requests: 200, savePolicy: steady}, nil, &bytes.Buffer{}))
	for _, c := range []struct {
		name, field, content string
		want                 []string
	}{
		{"truncated", "shadow", string(data[:len(data)/2]), []string{"shadow.file", "truncated or corrupt"}},
		{"unknown version", "shadow", strings.Replace(string(data), `"version": 1,`, `"version": 2,`, 1), []string{"shadow.file", "version 2, this build reads version 1"}},
		{"other encoder and arms", "policy", "", []string{"policy.file", "encoder", "steady.json"}},
	} {
		path := steady
		if c.content != "" {
			path = filepath.Join(dir, c.name+".json")
			require.NoError(t, os.WriteFile(path, []byte(c.content), 0o644))
		}
		cfg := strings.Replace(string(example), "shadow: {file: a.json}", "shadow: {file: "+art+"}", 1)
		if c.field == "shadow" {
			cfg = strings.Replace(string(example), "shadow: {file: a.json}", "shadow: {file: "+path+"}", 1)
		} else {
			cfg = strings.Replace(cfg, "policy: {name: thompson, params: {floor: \"0.6\", seed: \"1\"}}", "policy: {file: "+path+"}", 1)
			require.Contains(t, cfg, "policy: {file: "+path+"}")
		}
		cfg = strings.Replace(cfg, "./data/", dir+"/data/", -1)
		cfgPath := filepath.Join(dir, "gw.yaml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
		cmd := newServeCmd()
		cmd.SetArgs([]string{"--config", cfgPath, "--listen", "127.0.0.1:0"})
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if assert.Error(t, err, c.name) {
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w, c.name)
			}
		}
	}
}
