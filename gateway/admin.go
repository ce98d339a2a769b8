package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) modelList() []byte {
	var data []modelEntry
	for _, a := range s.cfg.Aliases {
		data = append(data, modelEntry{ID: a, Object: "model", Created: s.created, OwnedBy: "routelab"})
	}
	for _, m := range s.cfg.Models {
		owner := m.Provider
		if m.Cascade != nil {
			owner = "cascade"
		}
		data = append(data, modelEntry{ID: m.ID, Object: "model", Created: s.created, OwnedBy: owner})
	}
	b, _ := json.Marshal(struct { // plain strings always marshal
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{"list", data})
	return b
}

func (s *Server) handleModels(c *gin.Context) {
	cl, aerr := s.keys.authenticate(c.Request)
	if aerr != nil {
		writeAPIError(c.Writer, aerr)
		return
	}
	c.Set(ctxCaller, cl)
	if !s.requireScope(c, cl, scopeChat, "GET /v1/models") {
		return
	}
	c.Data(http.StatusOK, "application/json", s.models)
}

// ModelStatus is one row of GET /admin/models: the live profile plus the
// resilience state of the model.
type ModelStatus struct {
	route.Profile
	Provider   string  `json:"provider"`
	Breaker    string  `json:"breaker"`
	ProviderUp bool    `json:"provider_up"`
	InRotation bool    `json:"in_rotation"`
	Group      string  `json:"fallback_group,omitempty"`
	QPS        float64 `json:"qps"`
}

func (s *Server) handleAdminModels(c *gin.Context) {
	out := make([]ModelStatus, 0, len(s.armList))
	for _, a := range s.armList {
		st := ModelStatus{Profile: s.core.Profiles().Get(a.id), Provider: a.up.name, Breaker: a.breaker.State().String(),
			ProviderUp: !a.up.down.Load(), InRotation: a.available(), QPS: a.qps()}
		if a.group != nil {
			st.Group = a.group.name
		}
		out = append(out, st)
	}
	c.JSON(http.StatusOK, gin.H{"models": out, "policy": s.policyInfo()})
}

type policyInfo struct {
	Policy        string `json:"policy"`
	Version       string `json:"version"`
	Shadow        string `json:"shadow,omitempty"`
	ShadowVersion string `json:"shadow_version,omitempty"`
}

func (s *Server) policyInfo() policyInfo {
	p := s.core.Policy()
	pi := policyInfo{Policy: p.Name(), Version: policy.VersionOf(p)}
	if sp := s.core.ShadowPolicy(); sp != nil {
		pi.Shadow, pi.ShadowVersion = sp.Name(), policy.VersionOf(sp)
	}
	return pi
}

// policyChange is the body of POST /admin/policy and /admin/shadow. Policy
// is a spec string as the CLI takes it ("linucb=alpha:0.5;floor:0.05");
// Params, optional, adds parameters as a JSON object.
type policyChange struct {
	Policy string                     `json:"policy"`
	Params map[string]json.RawMessage `json:"params"`
}

// spec reads the policy field as a spec string, exactly as the CLI's
// --policy does (policy.ParseSpec: "NAME" or "NAME=key:value;key:value"),
// and adds params, the same parameters as a JSON object; a key given both
// ways is an error.
func (pc *policyChange) spec(params policy.Params) (policy.Spec, error) {
	sp, err := policy.ParseSpec(pc.Policy)
	if err != nil {
		return policy.Spec{}, err
	}
	for k, v := range params {
		if old, dup := sp.Params[k]; dup {
			return policy.Spec{}, fmt.Errorf("policy %q: parameter %q given in the spec (%q) and in params (%q)", pc.Policy, k, old, v)
		}
		sp.Params[k] = v
	}
	return sp, nil
}

// handleSetPolicy builds the policy a spec names through the registry, or
// restores an uploaded policy artifact (readPolicyRequest), and swaps it in
// atomically: requests past Select finish with the old policy. An artifact
// must match the gateway's encoder, reward and catalogue, as for policy:
// {file: ...}. The change is appended to the policy history (with a
// checkpoint directory) before it is made, and checkpointed after.
func (s *Server) handleSetPolicy(shadow bool) gin.HandlerFunc {
	action := artifact.ActionSetPolicy
	if shadow {
		action = artifact.ActionSetShadow
	}
	return func(c *gin.Context) {
		req, aerr := s.readPolicyRequest(c)
		if aerr != nil {
			writeAPIError(c.Writer, aerr)
			return
		}
		pc := req.change
		if req.art == nil && pc.Policy == "" && !shadow {
			writeAPIError(c.Writer, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_request", "policy: required").withParam("policy"))
			return
		}
		params := policy.Params{}
		for k, raw := range pc.Params {
			v, err := paramString(raw)
			if err != nil {
				writeAPIError(c.Writer, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_request", err.Error()).withParam("params."+k))
				return
			}
			params[k] = v
		}
		var (
			p    policy.Policy
			to   *artifact.PolicyRef
			desc string
		)
		switch {
		case req.art != nil:
			auditAttrs(c, artifactAuditAttrs(req.art)...)
			if p, aerr = s.artifactPolicy(req.art); aerr != nil {
				writeAPIError(c.Writer, aerr)
				return
			}
			to, desc = artifactRef(p, req.art), policyDesc("", req.art)
		case shadow && pc.Policy == "":
			desc = "(none)"
		default:
			spec, err := pc.spec(params)
			if err != nil {
				writeAPIError(c.Writer, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_policy", err.Error()).withParam("policy"))
				return
			}
			if p, err = s.reg.New(spec); err != nil {
				writeAPIError(c.Writer, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_policy", err.Error()).withParam("policy"))
				return
			}
			desc = spec.String()
		}
		s.policyMu.Lock()
		defer s.policyMu.Unlock()
		from := s.core.Policy()
		if shadow {
			from = s.core.ShadowPolicy()
		}
		if aerr := s.appendHistory(c, func() artifact.HistoryRecord {
			if to == nil && p != nil {
				to = s.policyRef(p)
			}
			return artifact.HistoryRecord{Action: action, From: s.policyRef(from), To: to}
		}); aerr != nil {
			writeAPIError(c.Writer, aerr)
			return
		}
		if shadow {
			s.core.SetShadow(p) // nil removes it
		} else {
			s.core.SetPolicy(p)
			s.promo.disarm() // a hand-picked policy is not a promotion to guard
		}
		s.checkpointAfterSwap()
		s.shareSwap(map[bool]string{false: "set", true: "shadow"}[shadow])
		s.log.Info("policy swapped", "shadow", shadow, "policy", desc)
		c.JSON(http.StatusOK, s.policyInfo())
	}
}

// paramString renders a JSON parameter value as the string policy.Params holds.
func paramString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case '{', '[', 'n':
		return "", fmt.Errorf("value %s must be a string, number or boolean", raw)
	}
	return strings.TrimSpace(string(raw)), nil
}

func (s *Server) handleShadowStatus(c *gin.Context) {
	c.JSON(http.StatusOK, s.promo.status(s.core.Policy(), s.core.ShadowPolicy()))
}

// PromoteRequest is the optional body of POST /admin/promote.
type PromoteRequest struct {
	// Force promotes even when the estimate does not justify it.
	Force bool `json:"force"`
}

// PromoteResponse answers POST /admin/promote and /admin/rollback.
type PromoteResponse struct {
	Policy   string `json:"policy"`
	Shadow   string `json:"shadow,omitempty"`
	Previous string `json:"previous,omitempty"`
	Forced   bool   `json:"forced,omitempty"`
	// Floor is the exploration floor promotion added (promotion.floor);
	// 0 when the policy already had one or none was configured.
	Floor   float64 `json:"floor,omitempty"`
	Warning string  `json:"warning,omitempty"`
	// Status is the estimate the decision was taken on.
	Status *ShadowStatus `json:"status,omitempty"`
}

// handlePromote makes the shadow the serving policy when the running
// estimate's lower bound beats the incumbent by the margin over enough
// samples (or when forced). The old serving policy becomes the shadow and
// the rollback target; the rollback guard is armed.
func (s *Server) handlePromote(c *gin.Context) {
	var pr PromoteRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 4<<10))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&pr)
	}
	if err != nil {
		writeAPIError(c.Writer, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_json", "body must be empty or {\"force\": BOOL}: "+err.Error()))
		return
	}
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	old, cand := s.core.Policy(), s.core.ShadowPolicy()
	if cand == nil {
		writeAPIError(c.Writer, apiErr(http.StatusConflict, typeInvalidRequest, "no_shadow", "no shadow policy to promote (POST /admin/shadow first)"))
		return
	}
	st := s.promo.status(old, cand)
	if !st.Eligible && !pr.Force {
		writeAPIError(c.Writer, apiErr(http.StatusConflict, typeInvalidRequest, "not_eligible", "shadow "+cand.Name()+" not promoted: "+st.Reason))
		return
	}
	// The guard needs a baseline worth comparing with: the incumbent's
	// value over at least one rollback window.
	baseline := math.NaN()
	if st.N >= int64(s.promo.cfg.RollbackWindow) {
		baseline = st.IncumbentValue
	}
	// The promoted policy keeps exploring (promotion.floor) so that the
	// demoted one, now the shadow, is still estimated without bias: the
	// rollback decision rests on that estimate.
	serve, err := withPromotionFloor(cand, s.promo.cfg.floor(), s.promo.nextSeed())
	if err != nil {
		writeAPIError(c.Writer, apiErr(http.StatusConflict, typeInvalidRequest, "not_promotable", "shadow "+cand.Name()+": promotion floor: "+err.Error()))
		return
	}
	resp := PromoteResponse{Policy: cand.Name(), Shadow: old.Name(), Previous: old.Name(), Forced: !st.Eligible, Status: &st}
	if serve != cand {
		resp.Floor = s.promo.cfg.floor()
	}
	if aerr := s.appendHistory(c, func() artifact.HistoryRecord {
		return artifact.HistoryRecord{Action: artifact.ActionPromote, Forced: resp.Forced,
			From: s.policyRef(old), To: s.policyRef(serve), Estimate: historyEstimate(&st), Floor: resp.Floor, Reason: st.Reason}
	}); aerr != nil {
		writeAPIError(c.Writer, aerr)
		return
	}
	// Clearing the shadow first means no request ever sees the same policy
	// in both slots; the serving swap itself is one atomic store.
	s.core.SetShadow(nil)
	s.core.SetPolicy(serve)
	s.core.SetShadow(old)
	s.promo.promoted(old, baseline)
	s.checkpointAfterSwap()
	s.shareSwap("promote")
	kind := "guarded"
	if !st.Eligible {
		kind = "forced"
		resp.Warning = "forced promotion: " + st.Reason
		s.log.Warn("shadow policy promoted by force", "policy", cand.Name(), "previous", old.Name(), "reason", st.Reason)
	} else {
		s.log.Info("shadow policy promoted", "policy", cand.Name(), "previous", old.Name(), "reason", st.Reason)
	}
	s.pm.promotions.WithLabelValues(kind).Inc()
	c.JSON(http.StatusOK, resp)
}

// handleRollback restores the serving policy a promotion replaced.
func (s *Server) handleRollback(c *gin.Context) {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	resp, ok := s.rollbackLocked(c, "manual")
	if c.Writer.Written() { // refused: the history could not be written
		return
	}
	if !ok {
		writeAPIError(c.Writer, apiErr(http.StatusConflict, typeInvalidRequest, "nothing_to_roll_back", "no promotion to roll back"))
		return
	}
	c.JSON(http.StatusOK, resp)
}

// autoRollback runs when the post-promotion guard fires.
func (s *Server) autoRollback() {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	s.rollbackLocked(nil, "auto")
}

// rollbackLocked swaps the previous serving policy back in; the policy it
// replaces stays as the shadow so its evaluation can go on. Callers hold
// policyMu.
//
// The rollback is recorded in the policy history first; a manual rollback
// that cannot be recorded is refused (c's answer is then written), an
// automatic one goes ahead regardless (the guard protects serving) and the
// failure is logged.
func (s *Server) rollbackLocked(c *gin.Context, trigger string) (PromoteResponse, bool) {
	g := s.promo.guardStatus()
	if !s.promo.hasPrevious() {
		return PromoteResponse{}, false
	}
	cur := s.core.Policy()
	rec := func() artifact.HistoryRecord {
		st := s.promo.status(cur, s.core.ShadowPolicy())
		rec := artifact.HistoryRecord{Action: artifact.ActionRollback, Trigger: trigger, From: s.policyRef(cur),
			To: s.policyRef(s.promo.previousPolicy()), Estimate: historyEstimate(&st)}
		if g != nil {
			rec.Reason = fmt.Sprintf("live mean %.4f over %d requests, threshold %.4f (baseline %.4f)", g.Mean, g.Seen, g.Threshold, g.Baseline)
		}
		if c == nil {
			rec.Identity = "rollback-guard"
		}
		return rec
	}
	if aerr := s.appendHistory(c, rec); aerr != nil && c != nil {
		writeAPIError(c.Writer, aerr)
		return PromoteResponse{}, true
	}
	prev := s.promo.takePrevious()
	s.core.SetShadow(nil)
	s.core.SetPolicy(prev)
	s.core.SetShadow(cur)
	s.checkpointAfterSwap()
	s.shareSwap("rollback")
	s.pm.rollbacks.WithLabelValues(trigger).Inc()
	if g != nil {
		s.log.Warn("serving policy rolled back", "trigger", trigger, "policy", prev.Name(), "demoted", cur.Name(),
			"window_mean", g.Mean, "threshold", g.Threshold, "baseline", g.Baseline)
	} else {
		s.log.Warn("serving policy rolled back", "trigger", trigger, "policy", prev.Name(), "demoted", cur.Name())
	}
	return PromoteResponse{Policy: prev.Name(), Shadow: cur.Name()}, true
}

// adminGuard wraps an /admin (or other guarded) handler: no or an unknown
// credential gets 401, a valid API key that is not the admin token 403.
// Every change (non-GET) and every refusal goes to the audit log with the
// caller's identity, source address, action and outcome.
func (s *Server) adminGuard(path string, h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		need := scopeAdminWrite
		if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			need = scopeAdminRead
		}
		acc, who := s.keys.adminCheck(c.Request, need)
		action := c.Request.Method + " " + path
		switch acc {
		case adminNoToken:
			writeAPIError(c.Writer, apiErr(http.StatusUnauthorized, typeAuth, "invalid_admin_token", "missing or invalid admin token"))
			s.auditLog(c, who, action, "denied")
			return
		case adminUserKey:
			writeAPIError(c.Writer, scopeErr(c.Writer.Header(), need, action))
			s.auditLog(c, who, action, "forbidden")
			return
		}
		c.Set(ctxAdminIdentity, who)
		h(c)
		if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
			outcome := "ok"
			if c.Writer.Status() >= 400 {
				outcome = "failed"
			}
			s.auditLog(c, who, action, outcome)
		}
	}
}

// auditLog writes one audit record (a JSON line on the audit logger).
// Handlers add attributes with auditAttrs (an uploaded artifact's spec and
// checksum).
func (s *Server) auditLog(c *gin.Context, who, action, outcome string) {
	attrs := []slog.Attr{slog.String("identity", who), slog.String("remote", c.Request.RemoteAddr),
		slog.String("action", action), slog.String("outcome", outcome),
		slog.Int("status", c.Writer.Status()), slog.String("policy", s.core.Policy().Name())}
	if v, ok := c.Get(ctxAuditAttrs); ok {
		attrs = append(attrs, v.([]slog.Attr)...)
	}
	s.audit.LogAttrs(c.Request.Context(), slog.LevelInfo, "admin", attrs...)
}
