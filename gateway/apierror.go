package gateway

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"
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
