package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Scopes say what a credential may do; every route needs one:
//
//	chat         POST /v1/chat/completions, GET /v1/models
//	feedback     POST /v1/feedback
//	admin-read   GET /admin/*, and /metrics, /healthz, /readyz unless in open_paths
//	admin-write  POST /admin/* (policy swaps, shadow, promotion, rollback)
//
// API keys hold their `scopes:` (default chat and feedback), the admin
// token admin-read and admin-write, a JWT the scopes of its scopes claim
// (auth.jwt.scopes_claim). Without any credential configured (development
// mode) every caller holds every scope. A valid credential without the
// route's scope gets 403 insufficient_scope naming the scope.
type scopeSet uint8

const (
	scopeChat scopeSet = 1 << iota
	scopeFeedback
	scopeAdminRead
	scopeAdminWrite

	scopeAll      = scopeChat | scopeFeedback | scopeAdminRead | scopeAdminWrite
	scopeDefault  = scopeChat | scopeFeedback // API keys without scopes:
	scopeAdminAll = scopeAdminRead | scopeAdminWrite
)

// Scope names as configured and as JWT scope claims carry them.
const (
	ScopeChat       = "chat"
	ScopeFeedback   = "feedback"
	ScopeAdminRead  = "admin-read"
	ScopeAdminWrite = "admin-write"
)

var scopeNames = []struct {
	name string
	s    scopeSet
}{{ScopeChat, scopeChat}, {ScopeFeedback, scopeFeedback}, {ScopeAdminRead, scopeAdminRead}, {ScopeAdminWrite, scopeAdminWrite}}

func (s scopeSet) String() string {
	var out []string
	for _, n := range scopeNames {
		if s&n.s != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, " ")
}

// parseScopes reads a key's configured scopes; none means scopeDefault.
func parseScopes(names []string) (scopeSet, error) {
	if len(names) == 0 {
		return scopeDefault, nil
	}
	var s scopeSet
	for i, n := range names {
		v, ok := scopeByName(n)
		if !ok {
			return 0, fmt.Errorf("[%d]: %q is not a scope (chat, feedback, admin-read, admin-write)", i, n)
		}
		s |= v
	}
	return s, nil
}

func scopeByName(n string) (scopeSet, bool) {
	for _, sn := range scopeNames {
		if sn.name == n {
			return sn.s, true
		}
	}
	return 0, false
}

// claimScopes reads a JWT scopes claim: a space-separated string (OAuth 2
// "scope") or an array of strings ("scp"). Unknown scope names are
// ignored: an identity provider issues scopes for other services too.
func claimScopes(v any) scopeSet {
	var s scopeSet
	add := func(n string) {
		if sc, ok := scopeByName(n); ok {
			s |= sc
		}
	}
	switch v := v.(type) {
	case string:
		for _, n := range strings.Fields(v) {
			add(n)
		}
	case []any:
		for _, x := range v {
			if n, ok := x.(string); ok {
				add(n)
			}
		}
	}
	return s
}

// scopeErr is the 403 for a valid credential without the route's scope.
func scopeErr(h http.Header, need scopeSet, route string) *APIError {
	if h != nil {
		h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="routelab", error="insufficient_scope", scope=%q`, need.String()))
	}
	return apiErr(http.StatusForbidden, typePermission, "insufficient_scope",
		fmt.Sprintf("this credential lacks the scope %q needed for %s", need.String(), route))
}

// requireScope answers 403 insufficient_scope unless cl holds need; it
// reports whether the request may go on.
func (s *Server) requireScope(c *gin.Context, cl *caller, need scopeSet, route string) bool {
	if cl.scopes&need == need {
		return true
	}
	s.refused.WithLabelValues("insufficient_scope").Inc()
	writeAPIError(c.Writer, scopeErr(c.Writer.Header(), need, route))
	return false
}

// ctxCaller is the gin context key under which handlers leave the
// authenticated *caller (for the access log).
const ctxCaller = "routelab.caller"
