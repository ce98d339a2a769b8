package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchdataLogged: --logged fits routers from a uniform logger's
// decision log of the training part; frozen on the test part they learn
// the word that tells hard prompts (dear alone solves them) from easy ones
// (cheap solves them for a hundredth of the price), which no fixed model
// and not the logger can do.
func TestBenchdataLogged(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	writeBench(t, train, 300, 0)
	writeBench(t, test, 60, 1000)
	var out bytes.Buffer
	fl := benchdataFlags{data: "routerbench", seed: 1, json: true, ho: heldoutFlags{train: train, test: test, seeds: 2,
		learners: "task-mean", textBuckets: 64, textWords: 1, banditLambda: 20, banditBuckets: 16, banditPasses: 3,
		logged: loggedFlags{learners: "ridge-ips,ridge-dr", logger: "random", l2: 0.001}}}
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	var got struct {
		Logged []struct {
			Policy string `json:"policy"`
			Margin struct {
				Mean float64 `json:"mean"`
			} `json:"margin_over_best_fixed"`
			Beats int `json:"seeds_beating_every_fixed"`
		} `json:"logged"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Len(t, got.Logged, 4)
	names := []string{}
	for _, l := range got.Logged {
		names = append(names, l.Policy)
		t.Logf("%s: margin over the best fixed model %.4f, %d/2 seeds beat every fixed model", l.Policy, l.Margin.Mean, l.Beats)
	}
	assert.Equal(t, []string{"logger random", "ridge-ips", "ridge-dr", "ridge (full information)"}, names)
	assert.Less(t, got.Logged[0].Margin.Mean, 0.0, "the uniform logger is worse than the best fixed model")
	for _, l := range got.Logged[1:] {
		assert.Equal(t, 2, l.Beats, l.Policy)
	}

	// Text output has the table; bad learner names are errors.
	fl.json = false
	out.Reset()
	require.NoError(t, runBenchdata(context.Background(), fl, &out))
	assert.Contains(t, out.String(), "routers fitted from a decision log")
	fl.ho.logged.learners = "ridge-xx"
	err := runBenchdata(context.Background(), fl, &out)
	assert.ErrorContains(t, err, `--logged "ridge-xx": want ridge-dm, ridge-dr, ridge-ips`)
}
