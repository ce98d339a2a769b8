package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Request is a client's OpenAI chat-completion request: the fields the
// gateway reads, and every top-level field raw, so that an OpenAI-format
// upstream receives the request exactly as sent but for the model name.
type Request struct {
	Model        string
	Messages     []Message
	Stream       bool
	IncludeUsage bool
	// MaxTokens is max_completion_tokens, else max_tokens; 0 = unset.
	MaxTokens   int
	Temperature *float64
	TopP        *float64
	Stop        []string
	// Metadata is OpenAI's string→string metadata map.
	Metadata map[string]string
	// Fields holds every top-level field of the body, raw and valid JSON.
	Fields map[string]json.RawMessage
	// Size is the body's length in bytes.
	Size int
}

// Message is one chat message. Content is raw: a JSON string, an array of
// content parts, or null.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// Text returns the message's text: the string content, or the text parts
// of a content-part array joined with newlines.
func (m *Message) Text() string {
	c := bytes.TrimSpace(m.Content)
	if len(c) == 0 || c[0] == 'n' {
		return ""
	}
	if c[0] == '"' {
		var s string
		if json.Unmarshal(c, &s) == nil {
			return s
		}
		return ""
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(c, &parts) != nil {
		return ""
	}
	var b []byte
	for _, p := range parts {
		if p.Type == "text" {
			if len(b) > 0 {
				b = append(b, '\n')
			}
			b = append(b, p.Text...)
		}
	}
	return string(b)
}

// RequestError is a client request the gateway rejects; Param names the
// offending field in OpenAI's error shape.
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func reqErr(param, format string, a ...any) error {
	return &RequestError{Param: param, Message: fmt.Sprintf(format, a...)}
}

// ParseRequest decodes and validates an OpenAI chat-completion body. Every
// rejection is a *RequestError naming the field.
func ParseRequest(body []byte) (*Request, error) {
	r := &Request{Size: len(body)}
	if err := json.Unmarshal(body, &r.Fields); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, reqErr("", "invalid JSON body at byte %d: %v", se.Offset, err)
		}
		return nil, reqErr("", "request body must be a JSON object: %v", err)
	}
	if r.Fields == nil {
		return nil, reqErr("", "request body must be a JSON object, got null")
	}
	f := r.Fields
	if raw, ok := f["model"]; ok {
		if err := json.Unmarshal(raw, &r.Model); err != nil {
			return nil, reqErr("model", "must be a string")
		}
	}
	if r.Model == "" {
		return nil, reqErr("model", "is required")
	}
	raw, ok := f["messages"]
	if !ok {
		return nil, reqErr("messages", "is required")
	}
	if err := json.Unmarshal(raw, &r.Messages); err != nil {
		return nil, reqErr("messages", "must be an array of {role, content} objects: %v", err)
	}
	if len(r.Messages) == 0 {
		return nil, reqErr("messages", "must contain at least one message")
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case "system", "user", "assistant", "tool", "developer", "function":
		case "":
			return nil, reqErr("messages["+strconv.Itoa(i)+"].role", "is required")
		default:
			return nil, reqErr("messages["+strconv.Itoa(i)+"].role", "%q is not one of system, developer, user, assistant, tool", m.Role)
		}
		if c := bytes.TrimSpace(m.Content); len(c) > 0 && c[0] != '"' && c[0] != '[' && c[0] != 'n' {
			return nil, reqErr("messages["+strconv.Itoa(i)+"].content", "must be a string, an array of content parts or null")
		}
	}
	if raw, ok := f["stream"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &r.Stream); err != nil {
			return nil, reqErr("stream", "must be a boolean")
		}
	}
	if raw, ok := f["stream_options"]; ok && !isNull(raw) {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, reqErr("stream_options", "must be an object {include_usage: bool}")
		}
		r.IncludeUsage = so.IncludeUsage
	}
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		if raw, ok := f[k]; ok && !isNull(raw) {
			var n int
			if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
				return nil, reqErr(k, "must be a non-negative integer")
			}
			if k == "max_completion_tokens" || r.MaxTokens == 0 {
				r.MaxTokens = n
			}
		}
	}
	for _, k := range []string{"temperature", "top_p"} {
		if raw, ok := f[k]; ok && !isNull(raw) {
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, reqErr(k, "must be a number")
			}
			if k == "temperature" {
				r.Temperature = &v
			} else {
				r.TopP = &v
			}
		}
	}
	if raw, ok := f["stop"]; ok && !isNull(raw) {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			r.Stop = []string{one}
		} else if err := json.Unmarshal(raw, &r.Stop); err != nil {
			return nil, reqErr("stop", "must be a string or an array of strings")
		}
	}
	if raw, ok := f["metadata"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &r.Metadata); err != nil {
			return nil, reqErr("metadata", "must be an object of string values")
		}
	}
	return r, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 4 && string(raw) == "null"
}

// AppendBody appends r's body with the given top-level fields replaced
// (or added) to dst. Values in override must be valid JSON. The other
// fields are copied raw: they were validated when the body was parsed.
func (r *Request) AppendBody(dst []byte, override map[string][]byte) []byte {
	dst = append(dst, '{')
	first := true
	for k, v := range r.Fields {
		if _, ok := override[k]; ok {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendKey(dst, k)
		dst = append(dst, v...)
	}
	for k, v := range override {
		if v == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendKey(dst, k)
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

func appendKey(dst []byte, k string) []byte {
	plain := utf8.ValidString(k)
	for i := 0; plain && i < len(k); i++ {
		if c := k[i]; c < 0x20 || c == '"' || c == '\\' || c == 0x7f || c >= 0x80 {
			plain = false
		}
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		return dst
	}
	q, _ := json.Marshal(k) // a string always marshals
	dst = append(dst, q...)
	return append(dst, ':')
}

// QuoteJSON returns s as a JSON string literal.
func QuoteJSON(s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return q
}
