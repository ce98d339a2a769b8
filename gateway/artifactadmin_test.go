package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// String returns everything written so far.
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// uploadGateway serves fastSim (models s1, s2) with extra config and an
// audit log in a buffer.
func uploadGateway(t *testing.T, extra string) (*Server, string, *syncBuf) {
	t.Helper()
	cfg, err := ParseConfig([]byte(fastSim + extra))
	require.NoError(t, err)
	audit := &syncBuf{}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), AuditLog: audit,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, hs.URL, audit
}

// trainedArtifact is a linucb artifact for fastSim's encoder with cat and
// rw, trained on a few updates so that its state is not a fresh one.
func trainedArtifact(t *testing.T, cat []string, rw decision.Reward) *artifact.Artifact {
	t.Helper()
	cfg, err := ParseConfig([]byte(fastSim))
	require.NoError(t, err)
	p, err := policy.NewBuiltinRegistry().NewFromString("linucb=alpha:0.5;seed:3")
	require.NoError(t, err)
	enc, err := policy.NewEncoder(cfg.EncoderSpec())
	require.NoError(t, err)
	arms := []decision.Arm{{ID: cat[0]}, {ID: cat[1]}}
	for i := range 50 {
		f := decision.Features{Task: "code", PromptTokens: 10 + i}
		f.Vector = enc.Encode(&f, nil)
		require.NoError(t, p.Update(&f, arms, i%2, float64(i%2)))
	}
	a, err := artifact.New(p, cfg.EncoderSpec(), rw, cat, artifact.Provenance{Source: "test"})
	require.NoError(t, err)
	return a
}

func encodeArtifact(t *testing.T, a *artifact.Artifact) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, a.Encode(&b))
	return b.String()
}

// TestAdminArtifactUpload: POST /admin/policy and /admin/shadow take a
// policy artifact as the body or in an "artifact" field; the policy
// restored decides from the uploaded state.
func TestAdminArtifactUpload(t *testing.T) {
	a := trainedArtifact(t, []string{"s1", "s2"}, decision.DefaultReward())
	body := encodeArtifact(t, a)
	srv, url, audit := uploadGateway(t, "policy: {name: thompson}\n")

	code, _, resp := post(t, url+"/admin/shadow", body)
	require.Equal(t, http.StatusOK, code, "%s", resp)
	require.NotNil(t, srv.Core().ShadowPolicy())
	assert.Equal(t, "linucb", srv.Core().ShadowPolicy().Name())
	var got bytes.Buffer
	require.NoError(t, srv.Core().ShadowPolicy().(policy.Snapshotter).Snapshot(&got))
	b, err := artifact.New(srv.Core().ShadowPolicy(), a.Encoder, decision.DefaultReward(), a.Catalogue, artifact.Provenance{})
	require.NoError(t, err)
	assert.Equal(t, a.StateSHA256, b.StateSHA256, "the shadow holds the uploaded state")

	code, _, resp = post(t, url+"/admin/policy", `{"artifact": `+body+`}`)
	require.Equal(t, http.StatusOK, code, "%s", resp)
	assert.Equal(t, "linucb", srv.Core().Policy().Name())
	routeSome(t, srv, 5)

	assert.Contains(t, audit.String(), `"artifact_state_sha256":"`+a.StateSHA256+`"`, "the upload is audited with its checksum")
	assert.Contains(t, audit.String(), `"action":"POST /admin/policy"`)

	// The spec-string form still works beside it.
	code, _, resp = post(t, url+"/admin/policy", `{"policy":"ucb1=floor:0.1"}`)
	require.Equal(t, http.StatusOK, code, "%s", resp)
	assert.Equal(t, "ucb1", srv.Core().Policy().Name())
}

// TestAdminArtifactUploadRefused: every bad upload is a 4xx naming the
// fault, and neither the serving nor the shadow policy changes.
func TestAdminArtifactUploadRefused(t *testing.T) {
	good := trainedArtifact(t, []string{"s1", "s2"}, decision.DefaultReward())
	goodBody := encodeArtifact(t, good)
	otherCat := encodeArtifact(t, trainedArtifact(t, []string{"s1", "s9"}, decision.DefaultReward()))
	rw := decision.DefaultReward()
	rw.Cost = 0.5
	otherRw := encodeArtifact(t, trainedArtifact(t, []string{"s1", "s2"}, rw))
	otherEnc := func() string {
		p, err := policy.NewBuiltinRegistry().NewFromString("linucb")
		require.NoError(t, err)
		a, err := artifact.New(p, policy.DefaultEncoderSpec([]string{"code", "chat"}), decision.DefaultReward(), []string{"s1", "s2"}, artifact.Provenance{})
		require.NoError(t, err)
		return encodeArtifact(t, a)
	}()

	srv, url, audit := uploadGateway(t, "policy: {name: thompson}\nshadow: {name: ucb1}\nlimits: {max_artifact_bytes: 60000}\n")
	before, beforeShadow := srv.Core().Policy(), srv.Core().ShadowPolicy()
	for _, tc := range []struct {
		name, body string
		status     int
		want       []string
	}{
		{"other catalogue", otherCat, 400, []string{"artifact_mismatch", "catalogue", "[s1 s9]", "[s1 s2]"}},
		{"other reward", otherRw, 400, []string{"reward", "cost 0.5", "cost 0.2"}},
		{"other encoder", otherEnc, 400, []string{"encoder: artifact was trained with", "this one uses", "translate"}},
		{"truncated body", goodBody[:len(goodBody)/2], 400, []string{"invalid_artifact", "truncated or corrupt"}},
		{"truncated in field", `{"artifact": ` + goodBody[:len(goodBody)/2], 400, []string{"invalid_artifact", "truncated or corrupt"}},
		{"unknown version", strings.Replace(goodBody, `"version": 1,`, `"version": 99,`, 1), 400, []string{"version 99, this build reads version 1"}},
		{"corrupt state", strings.Replace(goodBody, `"alpha":`, `"alpha": 9, "x":`, 1), 400, []string{"invalid_artifact"}},
		{"artifact and spec", `{"artifact": ` + goodBody + `, "policy": "ucb1"}`, 400, []string{"takes no other field"}},
		{"too large", `{"policy": "` + strings.Repeat("x", 70000) + `"}`, 413, []string{"limits.max_artifact_bytes (60000 bytes)"}},
	} {
		for _, path := range []string{"/admin/policy", "/admin/shadow"} {
			code, _, body := post(t, url+path, tc.body)
			assert.Equal(t, tc.status, code, "%s %s: %s", tc.name, path, body)
			for _, w := range tc.want {
				assert.Contains(t, string(body), w, "%s %s", tc.name, path)
			}
		}
	}
	assert.Same(t, before, srv.Core().Policy(), "a refused upload changes nothing")
	assert.Same(t, beforeShadow, srv.Core().ShadowPolicy(), "a refused upload changes nothing")
	assert.Contains(t, audit.String(), `"outcome":"failed"`, "refusals are audited")

	// Promote without a shadow: 409, nothing changes.
	code, _, body := post(t, url+"/admin/shadow", `{}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, _, body = post(t, url+"/admin/promote", `{"force": true}`)
	assert.Equal(t, http.StatusConflict, code, "%s", body)
	assert.Contains(t, string(body), "no shadow policy to promote")
	assert.Same(t, before, srv.Core().Policy())
}

// TestPolicyHistory: with a checkpoint directory, every swap, promotion
// and rollback appends a record (who, when, estimate with interval,
// forced, from/to with state checksums) to history.jsonl before it is made.
func TestPolicyHistory(t *testing.T) {
	dir := t.TempDir()
	a := trainedArtifact(t, []string{"s1", "s2"}, decision.DefaultReward())
	srv, url, _ := uploadGateway(t, "policy: {name: thompson, params: {floor: \"0.1\", seed: \"1\"}}\ncheckpoint: {dir: "+dir+"}\npromotion: {min_samples: 5}\n")
	code, _, body := post(t, url+"/admin/shadow", encodeArtifact(t, a))
	require.Equal(t, http.StatusOK, code, "%s", body)
	routeSome(t, srv, 30)
	code, _, body = post(t, url+"/admin/promote", `{"force": true}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var pr PromoteResponse
	require.NoError(t, json.Unmarshal(body, &pr))
	code, _, body = post(t, url+"/admin/rollback", ``)
	require.Equal(t, http.StatusOK, code, "%s", body)

	h, err := artifact.ReadHistory(dir)
	require.NoError(t, err)
	require.Len(t, h, 3)
	assert.Equal(t, artifact.ActionSetShadow, h[0].Action)
	assert.Equal(t, a.StateSHA256, h[0].To.StateSHA256)
	assert.Equal(t, "test", h[0].To.Source)
	assert.Nil(t, h[0].From, "there was no shadow before")

	p := h[1]
	assert.Equal(t, artifact.ActionPromote, p.Action)
	assert.Equal(t, "anonymous", p.Identity, "no admin token configured")
	assert.NotEmpty(t, p.Remote)
	assert.Equal(t, pr.Forced, p.Forced)
	assert.Equal(t, "thompson", p.From.Policy)
	assert.Equal(t, "linucb", p.To.Policy)
	assert.Len(t, p.From.StateSHA256, 64)
	assert.Len(t, p.To.StateSHA256, 64)
	require.NotNil(t, p.Estimate)
	assert.Equal(t, pr.Status.N, p.Estimate.N)
	require.NotNil(t, p.Estimate.CILow)
	assert.Equal(t, *pr.Status.CILow, *p.Estimate.CILow)
	assert.Equal(t, 0.95, p.Estimate.Confidence)
	assert.False(t, p.Time.IsZero())

	r := h[2]
	assert.Equal(t, artifact.ActionRollback, r.Action)
	assert.Equal(t, "manual", r.Trigger)
	assert.Equal(t, "linucb", r.From.Policy)
	assert.Equal(t, "thompson", r.To.Policy)

	// The swaps were checkpointed: the serving checkpoint is thompson again.
	ck, err := artifact.Read(filepath.Join(dir, ServingCheckpoint))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(ck.Spec, "thompson"), "serving checkpoint %s", ck.Spec)
}

// TestPolicyHistoryUnwritableRefusesSwap: a change that cannot be recorded
// is not made.
func TestPolicyHistoryUnwritableRefusesSwap(t *testing.T) {
	dir := t.TempDir()
	srv, url, _ := uploadGateway(t, "policy: {name: thompson}\ncheckpoint: {dir: "+dir+"}\n")
	// A directory where the history file should be: appends fail.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, artifact.HistoryFile), 0o755))
	before := srv.Core().Policy()
	code, _, body := post(t, url+"/admin/policy", `{"policy":"ucb1"}`)
	assert.Equal(t, http.StatusInternalServerError, code, "%s", body)
	assert.Contains(t, string(body), "the change was not made")
	assert.Same(t, before, srv.Core().Policy())
}

// TestShadowRemovalDropsItsCheckpoint: after DELETE-by-POST of the shadow,
// its checkpoint goes too, so a restart does not bring back a removed shadow.
func TestShadowRemovalDropsItsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	srv, url, _ := uploadGateway(t, "policy: {name: thompson}\nshadow: {name: ucb1}\ncheckpoint: {dir: "+dir+"}\n")
	require.NoError(t, srv.Checkpoint())
	_, err := os.Stat(filepath.Join(dir, ShadowCheckpoint))
	require.NoError(t, err)
	code, _, body := post(t, url+"/admin/shadow", `{}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	_, err = os.Stat(filepath.Join(dir, ShadowCheckpoint))
	assert.True(t, os.IsNotExist(err), "shadow checkpoint removed: %v", err)
	h, err := artifact.ReadHistory(dir)
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.Equal(t, artifact.ActionSetShadow, h[0].Action)
	assert.Equal(t, "ucb1", h[0].From.Policy)
	assert.Nil(t, h[0].To)
}

// TestRestartAfterPromotionOfUploadedShadow: the config names no shadow;
// an artifact uploaded as shadow is promoted; after a restart the promoted
// policy serves with its state and the demoted one is still the shadow.
func TestRestartAfterPromotionOfUploadedShadow(t *testing.T) {
	dir := t.TempDir()
	a := trainedArtifact(t, []string{"s1", "s2"}, decision.DefaultReward())
	yaml := "policy: {name: thompson, params: {floor: \"0.2\", seed: \"1\"}}\ncheckpoint: {dir: " + dir + "}\n"
	srv, url, _ := uploadGateway(t, yaml)
	code, _, body := post(t, url+"/admin/shadow", encodeArtifact(t, a))
	require.Equal(t, http.StatusOK, code, "%s", body)
	routeSome(t, srv, 20)
	code, _, body = post(t, url+"/admin/promote", `{"force": true}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	routeSome(t, srv, 20)
	srv.Core().Flush()
	require.NoError(t, srv.Checkpoint())
	serving, shadow := policyState(t, srv.Core().Policy()), policyState(t, srv.Core().ShadowPolicy())

	srv2, logs, err := ckptGateway(t, fastSim+yaml)
	require.NoError(t, err)
	assert.Equal(t, serving, policyState(t, srv2.Core().Policy()), "the promoted policy resumes with its state")
	require.NotNil(t, srv2.Core().ShadowPolicy(), "the demoted policy is still the shadow:\n%s", logs)
	assert.Equal(t, shadow, policyState(t, srv2.Core().ShadowPolicy()))
	assert.Equal(t, "thompson", srv2.Core().ShadowPolicy().Name())
}
