package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// ckptGateway builds a gateway from yaml (plus a checkpoint dir) without
// serving it; logs go to the returned buffer.
func ckptGateway(t *testing.T, yaml string) (*Server, *bytes.Buffer, error) {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	var logs bytes.Buffer
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	return srv, &logs, err
}

// policyState is the snapshot state of the gateway's serving policy.
func policyState(t *testing.T, p policy.Policy) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, p.(policy.Snapshotter).Snapshot(&b))
	return b.String()
}

func routeSome(t *testing.T, srv *Server, n int) {
	t.Helper()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for range n {
		code, _, body := post(t, hs.URL+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
		require.Equal(t, 200, code, "%s", body)
	}
}

func TestCheckpointRestoresServingPolicy(t *testing.T) {
	dir := t.TempDir()
	yaml := fastSim + "policy: {name: thompson, params: {seed: \"3\"}}\ncheckpoint: {dir: " + dir + "}\n"
	srv, _, err := ckptGateway(t, yaml)
	require.NoError(t, err)
	fresh := policyState(t, srv.Core().Policy())
	routeSome(t, srv, 40)
	srv.Core().Flush()
	learned := policyState(t, srv.Core().Policy())
	require.NotEqual(t, fresh, learned, "the policy learned from the requests")
	require.NoError(t, srv.Checkpoint())

	a, err := artifact.Read(filepath.Join(dir, ServingCheckpoint))
	require.NoError(t, err)
	assert.Equal(t, "checkpoint", a.Provenance.Source)
	assert.Equal(t, artifact.CodeVersion(), a.Provenance.CodeVersion, "no Opts.CodeVersion: the build information")
	assert.Equal(t, []string{"s1", "s2"}, a.Catalogue)
	_, err = os.Stat(filepath.Join(dir, ShadowCheckpoint))
	assert.True(t, os.IsNotExist(err), "no shadow, no shadow checkpoint")

	// A restart resumes the learned state.
	srv2, logs, err := ckptGateway(t, yaml)
	require.NoError(t, err)
	assert.Equal(t, learned, policyState(t, srv2.Core().Policy()))
	assert.Contains(t, logs.String(), "restored policy from checkpoint")

	// A corrupt checkpoint: a clear warning and a fresh policy.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ServingCheckpoint), []byte(`{"format":"routelab/policy-artifact","vers`), 0o644))
	srv3, logs, err := ckptGateway(t, yaml)
	require.NoError(t, err)
	assert.Equal(t, fresh, policyState(t, srv3.Core().Policy()))
	assert.Contains(t, logs.String(), "checkpoint not restored")
	assert.Contains(t, logs.String(), "truncated or corrupt")
	kept, err := filepath.Glob(filepath.Join(dir, ServingCheckpoint+".rejected-*"))
	require.NoError(t, err)
	assert.Len(t, kept, 1, "the corrupt checkpoint is kept aside")

	// A checkpoint of another catalogue: also a warning, not a crash.
	require.NoError(t, artifact.Write(filepath.Join(dir, ServingCheckpoint), a))
	other := strings.Replace(yaml, "id: s2,", "id: s9,", 1)
	srv4, logs, err := ckptGateway(t, other)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "[s1 s9]")
	assert.Equal(t, "thompson", srv4.Core().Policy().Name())
}

// TestCheckpointCodeVersion: checkpoints name the binary as the CLI's
// other artifacts do (Opts.CodeVersion, from --version's string).
func TestCheckpointCodeVersion(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(fastSim + "policy: {name: thompson}\ncheckpoint: {dir: " + dir + "}\n"))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.DiscardHandler), CodeVersion: "v9.9.9 abc123"})
	require.NoError(t, err)
	routeSome(t, srv, 3)
	require.NoError(t, srv.Checkpoint())
	a, err := artifact.Read(filepath.Join(dir, ServingCheckpoint))
	require.NoError(t, err)
	assert.Equal(t, "v9.9.9 abc123", a.Provenance.CodeVersion)
}

func TestCheckpointOnDrain(t *testing.T) {
	dir := t.TempDir()
	srv, _, err := ckptGateway(t, fastSim+"shadow: {name: ucb1}\ncheckpoint: {dir: "+dir+", every: 1h}\n")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	for _, f := range []string{ServingCheckpoint, ShadowCheckpoint} {
		_, err := artifact.Read(filepath.Join(dir, f))
		assert.NoError(t, err, f)
	}
}

func TestPolicyFileConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(fastSim))
	require.NoError(t, err)
	write := func(name, spec string, cat []string, rw decision.Reward) string {
		p, err := policy.NewBuiltinRegistry().NewFromString(spec)
		require.NoError(t, err)
		a, err := artifact.New(p, cfg.EncoderSpec(), rw, cat, artifact.Provenance{Source: "test"})
		require.NoError(t, err)
		path := filepath.Join(dir, name)
		require.NoError(t, artifact.Write(path, a))
		return path
	}
	good := write("good.json", "linucb=alpha:0.5", []string{"s2", "s1"}, decision.DefaultReward())
	srv, _, err := ckptGateway(t, fastSim+"policy: {file: "+good+"}\nshadow: {file: "+good+"}\n")
	require.NoError(t, err)
	assert.Equal(t, "linucb", srv.Core().Policy().Name())
	assert.Equal(t, "linucb", srv.Core().ShadowPolicy().Name())

	badCat := write("cat.json", "linucb", []string{"s1", "s3"}, decision.DefaultReward())
	_, _, err = ckptGateway(t, fastSim+"policy: {file: "+badCat+"}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "policy.file")
	assert.Contains(t, err.Error(), "[s1 s3]")
	assert.Contains(t, err.Error(), "[s1 s2]")

	rw := decision.DefaultReward()
	rw.Latency = 0.4
	badRw := write("rw.json", "linucb", []string{"s1", "s2"}, rw)
	_, _, err = ckptGateway(t, fastSim+"shadow: {file: "+badRw+"}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "shadow.file")
	assert.Contains(t, err.Error(), "latency 0.4")
	assert.Contains(t, err.Error(), "latency 0.2")

	_, _, err = ckptGateway(t, fastSim+"policy: {file: "+filepath.Join(dir, "none.json")+"}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "none.json")

	_, err = ParseConfig([]byte(fastSim + "policy: {name: ucb1, file: " + good + "}\n"))
	if err == nil {
		cfg, _ := ParseConfig([]byte(fastSim))
		cfg.Policy = PolicyConfig{Name: "ucb1", File: good}
		err = cfg.Validate()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not both")
}

// Checkpoints run beside live traffic (the race detector checks them).
func TestCheckpointConcurrentWithTraffic(t *testing.T) {
	dir := t.TempDir()
	srv, _, err := ckptGateway(t, fastSim+"policy: {name: linucb}\nshadow: {name: thompson}\ncheckpoint: {dir: "+dir+"}\n")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		routeSome(t, srv, 60)
	}()
	for i := 0; ; i++ {
		require.NoError(t, srv.Checkpoint())
		select {
		case <-done:
			_, err := artifact.Read(filepath.Join(dir, ServingCheckpoint))
			require.NoError(t, err)
			t.Logf("%d checkpoints during the traffic", i+1)
			return
		default:
		}
	}
}
