package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/policy"
)

// DefaultMaxArtifactBytes is limits.max_artifact_bytes when unset: the
// largest body POST /admin/policy and /admin/shadow accept.
const DefaultMaxArtifactBytes = 16 << 20

// gin context keys set by the admin handlers for adminGuard's audit record.
const (
	ctxAdminIdentity = "routelab.admin_identity"
	ctxAuditAttrs    = "routelab.audit_attrs"
)

// policyRequest is a parsed POST /admin/policy or /admin/shadow body:
// either a spec change or an artifact upload.
type policyRequest struct {
	change policyChange
	art    *artifact.Artifact
}

// readPolicyRequest reads the body of POST /admin/policy or /admin/shadow.
// Three forms are accepted:
//
//	{"policy": "linucb=alpha:0.5;floor:0.05", "params": {...}}   a spec, as the CLI's --policy
//	{"format": "routelab/policy-artifact", "version": 1, ...}     an artifact file, as the body
//	{"artifact": {"format": "routelab/policy-artifact", ...}}     an artifact in a field
//
// The body is limited to limits.max_artifact_bytes (413 beyond). An
// artifact that is truncated, corrupt or of another version is a 400
// (invalid_artifact), as `routelab sim --policy-file` would refuse it.
func (s *Server) readPolicyRequest(c *gin.Context) (policyRequest, *APIError) {
	var pr policyRequest
	limit := int64(s.lim.MaxArtifactBytes)
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return pr, apiErr(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
				fmt.Sprintf("body larger than limits.max_artifact_bytes (%d bytes)", limit))
		}
		return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_json", "read body: "+err.Error())
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		if bytes.Contains(body, []byte(artifact.Format)) {
			// An artifact upload cut short: say so as the CLI does.
			_, aerr := artifact.Decode(bytes.NewReader(body))
			return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_artifact", errText(aerr, err)).withParam("artifact")
		}
		return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_json",
			`body must be {"policy": SPEC, "params": {...}}, a policy artifact, or {"artifact": ARTIFACT}: `+err.Error())
	}
	raw, param := json.RawMessage(nil), ""
	switch {
	case top["format"] != nil:
		raw, param = body, "format"
	case top["artifact"] != nil:
		if len(top) != 1 {
			return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_request",
				`{"artifact": ...} takes no other field (give the policy spec or the artifact, not both)`).withParam("artifact")
		}
		raw, param = top["artifact"], "artifact"
	}
	if raw != nil {
		a, err := artifact.Decode(bytes.NewReader(raw))
		if err != nil {
			return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_artifact", "uploaded "+err.Error()).withParam(param)
		}
		pr.art = a
		return pr, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pr.change); err != nil {
		return pr, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_json",
			`body must be {"policy": SPEC, "params": {...}}, a policy artifact, or {"artifact": ARTIFACT}: `+err.Error())
	}
	return pr, nil
}

func errText(preferred, fallback error) string {
	if preferred != nil {
		return "uploaded " + preferred.Error()
	}
	return fallback.Error()
}

// artifactPolicy checks an uploaded artifact against the gateway's
// encoder, reward and catalogue (the same check as policy: {file: ...}) and
// builds its policy.
func (s *Server) artifactPolicy(a *artifact.Artifact) (policy.Policy, *APIError) {
	env := s.ckpt.env
	if err := a.Check(env.enc, env.reward, env.catalogue); err != nil {
		return nil, apiErr(http.StatusBadRequest, typeInvalidRequest, "artifact_mismatch", "uploaded artifact "+a.Spec+": "+err.Error()).withParam("artifact")
	}
	p, err := a.Policy(s.reg)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_artifact", "uploaded "+err.Error()).withParam("artifact")
	}
	return p, nil
}

// auditAttrs adds attributes to the audit record adminGuard writes for
// this request.
func auditAttrs(c *gin.Context, attrs ...slog.Attr) {
	if v, ok := c.Get(ctxAuditAttrs); ok {
		attrs = append(v.([]slog.Attr), attrs...)
	}
	c.Set(ctxAuditAttrs, attrs)
}

func artifactAuditAttrs(a *artifact.Artifact) []slog.Attr {
	return []slog.Attr{slog.String("artifact_spec", a.Spec), slog.String("artifact_state_sha256", a.StateSHA256),
		slog.String("artifact_source", a.Provenance.Source), slog.Time("artifact_created", a.Provenance.Created)}
}

// adminIdentity is the identity adminGuard established for this request.
func adminIdentity(c *gin.Context) string {
	if v, ok := c.Get(ctxAdminIdentity); ok {
		return v.(string)
	}
	return "unknown"
}

// policyRef describes p for the history: name, version and the checksum
// an artifact of its current state would carry.
func (s *Server) policyRef(p policy.Policy) *artifact.PolicyRef {
	if p == nil {
		return nil
	}
	ref := &artifact.PolicyRef{Policy: p.Name(), Version: policy.VersionOf(p)}
	if _, ok := p.(policy.Snapshotter); ok {
		env := s.ckpt.env
		if a, err := artifact.New(p, env.enc, env.reward, env.catalogue, artifact.Provenance{Created: s.now().UTC(), CodeVersion: "-"}); err == nil {
			ref.StateSHA256 = a.StateSHA256
		}
	}
	return ref
}

// artifactRef describes an uploaded artifact for the history.
func artifactRef(p policy.Policy, a *artifact.Artifact) *artifact.PolicyRef {
	created := a.Provenance.Created
	return &artifact.PolicyRef{Policy: p.Name(), Version: policy.VersionOf(p), StateSHA256: a.StateSHA256,
		Source: a.Provenance.Source, Created: &created}
}

// historyEstimate converts a shadow status to the history's estimate.
func historyEstimate(st *ShadowStatus) *artifact.Estimate {
	if st == nil {
		return nil
	}
	return &artifact.Estimate{N: st.N, ESS: st.ESS, IncumbentValue: st.IncumbentValue, ShadowValue: st.ShadowValue,
		Diff: st.Diff, CILow: st.CILow, CIHigh: st.CIHigh, Confidence: st.Confidence, Margin: st.Margin}
}

// appendHistory appends the record build returns (called only when there
// is a history to write: it snapshots policies) to the checkpoint
// directory's history. Callers hold policyMu, so records are in the order
// of the swaps. The swap is made only after the record is durable: a
// change that cannot be recorded is refused (500) rather than made
// unrecorded.
func (s *Server) appendHistory(c *gin.Context, build func() artifact.HistoryRecord) *APIError {
	if s.cfg.Checkpoint.Dir == "" {
		return nil
	}
	rec := build()
	if c != nil {
		rec.Identity, rec.Remote = adminIdentity(c), c.Request.RemoteAddr
	}
	rec.Time = s.now().UTC()
	if err := artifact.AppendHistory(s.cfg.Checkpoint.Dir, rec); err != nil {
		s.log.Error("policy history not written", "err", err)
		return apiErr(http.StatusInternalServerError, typeServer, "history_failed", "the change was not made: "+err.Error())
	}
	return nil
}

// checkpointAfterSwap writes the checkpoints right after a swap, so that a
// restart resumes the new arrangement even before the next periodic
// checkpoint. Callers hold policyMu.
func (s *Server) checkpointAfterSwap() {
	if err := s.Checkpoint(); err != nil {
		s.log.Warn("policy checkpoint after swap failed", "err", err)
	}
}

// policyDesc is how a swapped-in policy is named in logs.
func policyDesc(spec string, a *artifact.Artifact) string {
	if a != nil {
		return "artifact " + a.Spec + " (state " + strings.TrimSpace(a.StateSHA256[:12]) + ")"
	}
	return spec
}
