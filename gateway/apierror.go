package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/routelab/routelab/gateway/provider"
)

// APIError is an error answered in OpenAI's shape:
// {"error":{"message","type","param","code"}}.
type APIError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *APIError) Error() string { return e.Message }

func apiErr(status int, typ, code, msg string) *APIError {
	e := &APIError{Status: status, Type: typ, Message: msg}
	if code != "" {
		e.Code = &code
	}
	return e
}

func (e *APIError) withParam(p string) *APIError {
	if p != "" {
		e.Param = &p
	}
	return e
}

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuth           = "authentication_error"
	typePermission     = "permission_error"
	typeNotFound       = "not_found_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
	typeUpstream       = "upstream_error"
	typeUnavailable    = "service_unavailable"
	typeTimeout        = "timeout_error"
)

func (e *APIError) body() []byte {
	b, _ := json.Marshal(struct { // plain strings and pointers always marshal
		Error *APIError `json:"error"`
	}{e})
	return b
}

func writeAPIError(w http.ResponseWriter, e *APIError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="routelab"`)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.body())
}

// maxEcho is how much of a client's input an error message quotes.
const maxEcho = 64

// clip shortens client input echoed in an error message to maxEcho bytes
// (on a rune boundary), marking the cut with "…".
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	n := maxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// publicCauses is what a client is told, by error code, when an upstream
// fails: the model and a generic cause, never the upstream's URL or raw
// error text (those go to the server log with the request id).
var publicCauses = map[string]string{
	"upstream_rejected_request": "the upstream rejected the request",
	"upstream_timeout":          "the upstream timed out",
	"upstream_rate_limited":     "the upstream is rate limited",
	"upstream_unavailable":      "the model is temporarily unavailable",
	"upstream_error":            "the upstream failed",
}

// clientFailure maps the final upstream error of request id to the
// client's answer (failure), logs the details, and replaces the message
// by the model's name and a generic cause.
func (s *Server) clientFailure(ctx context.Context, pe *provider.Error, a *arm, id string) *APIError {
	e := failure(ctx, pe)
	model := ""
	if a != nil {
		model = a.id
	}
	code := ""
	if e.Code != nil {
		code = *e.Code
	}
	s.log.Warn("upstream failure", "request_id", id, "model", model, "status", e.Status, "code", code, "err", pe.Error())
	cause, ok := publicCauses[code]
	if !ok {
		cause = "the upstream failed"
	}
	if pe.HTTPStatus != 0 {
		cause += fmt.Sprintf(" (HTTP %d)", pe.HTTPStatus)
	}
	e.Message = fmt.Sprintf("model %s: %s; request id %s has the details in the gateway's log", model, cause, id)
	return e
}
