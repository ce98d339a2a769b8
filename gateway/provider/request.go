package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Request is a client's OpenAI chat-completion request: the fields the
// gateway reads, and the body itself, so that an OpenAI-format upstream
// receives the request exactly as sent but for the model name.
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
	// Body is the request as received (valid JSON); Members are the byte
	// spans of its top-level members, in order.
	Body    []byte
	Members []Member
	// Size is the body's length in bytes.
	Size int
}

// Member is one top-level "key": value of a request body: Key unescaped,
// and Body[Start:End] the member's bytes from the key's opening quote to
// the end of its value.
type Member struct {
	Key        string
	Start, End int
	ValueStart int
}

// Field returns the raw value of the top-level member key (the last one
// when repeated), or nil.
func (r *Request) Field(key string) json.RawMessage {
	var v json.RawMessage
	for _, m := range r.Members {
		if m.Key == key {
			v = r.Body[m.ValueStart:m.End]
		}
	}
	return v
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

// wireRequest is the part of the body the gateway reads, decoded in one
// pass.
type wireRequest struct {
	Model         *string   `json:"model"`
	Messages      []Message `json:"messages"`
	Stream        *bool     `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens     *int              `json:"max_tokens"`
	MaxCompTokens *int              `json:"max_completion_tokens"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	Stop          json.RawMessage   `json:"stop"`
	Metadata      map[string]string `json:"metadata"`
}

// fieldProblems says what each top-level field must be, for type errors.
var fieldProblems = map[string]string{
	"model":                 "must be a string",
	"messages":              "must be an array of {role, content} objects",
	"stream":                "must be a boolean",
	"stream_options":        "must be an object {include_usage: bool}",
	"max_tokens":            "must be a non-negative integer",
	"max_completion_tokens": "must be a non-negative integer",
	"temperature":           "must be a number",
	"top_p":                 "must be a number",
	"metadata":              "must be an object of string values",
}

// ParseRequest decodes and validates an OpenAI chat-completion body. Every
// rejection is a *RequestError naming the field. The body is kept (not
// copied): the caller must not modify it afterwards.
func ParseRequest(body []byte) (*Request, error) {
	r := &Request{Size: len(body), Body: body}
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, reqErr("", "invalid JSON body at byte %d: %v", se.Offset, err)
		case errors.As(err, &te) && te.Field != "":
			top, _, _ := strings.Cut(te.Field, ".")
			if msg, ok := fieldProblems[top]; ok {
				if top == "messages" && te.Field != top {
					return nil, reqErr(top, "%s (%s is not a %s)", msg, te.Field, te.Type)
				}
				return nil, reqErr(top, "%s", msg)
			}
			return nil, reqErr(te.Field, "must be a %s", te.Type)
		}
		return nil, reqErr("", "request body must be a JSON object: %v", err)
	}
	members, ok := scanMembers(body, make([]Member, 0, 16))
	if !ok {
		return nil, reqErr("", "request body must be a JSON object")
	}
	r.Members = members
	if w.Model != nil {
		r.Model = *w.Model
	}
	if r.Model == "" {
		return nil, reqErr("model", "is required")
	}
	if w.Messages == nil {
		return nil, reqErr("messages", "is required")
	}
	r.Messages = w.Messages
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
		if c := m.Content; len(c) > 0 && c[0] != '"' && c[0] != '[' && c[0] != 'n' {
			return nil, reqErr("messages["+strconv.Itoa(i)+"].content", "must be a string, an array of content parts or null")
		}
	}
	if w.Stream != nil {
		r.Stream = *w.Stream
	}
	if w.StreamOptions != nil {
		r.IncludeUsage = w.StreamOptions.IncludeUsage
	}
	if w.MaxTokens != nil {
		if *w.MaxTokens < 0 {
			return nil, reqErr("max_tokens", "must be a non-negative integer")
		}
		r.MaxTokens = *w.MaxTokens
	}
	if w.MaxCompTokens != nil {
		if *w.MaxCompTokens < 0 {
			return nil, reqErr("max_completion_tokens", "must be a non-negative integer")
		}
		r.MaxTokens = *w.MaxCompTokens
	}
	r.Temperature, r.TopP, r.Metadata = w.Temperature, w.TopP, w.Metadata
	if raw := w.Stop; len(raw) > 0 && !isNull(raw) {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			r.Stop = []string{one}
		} else if err := json.Unmarshal(raw, &r.Stop); err != nil {
			return nil, reqErr("stop", "must be a string or an array of strings")
		}
	}
	return r, nil
}

// scanMembers finds the top-level members of body, which must be valid
// JSON (ParseRequest validates it first); ok is false when body is not an
// object. It is a plain byte loop: strings are skipped escape-aware and
// nested values by depth.
func scanMembers(b []byte, out []Member) ([]Member, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return out, false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return out, false
		}
		if b[i] == '}' {
			return out, true
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		if i >= len(b) || b[i] != '"' {
			return out, false
		}
		m := Member{Start: i}
		ke := skipString(b, i)
		key := b[i+1 : ke-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(b[i:ke], &k) != nil {
				return out, false
			}
			m.Key = k
		} else {
			m.Key = memberKey(key)
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return out, false
		}
		i = skipWS(b, i+1)
		m.ValueStart = i
		i = skipValue(b, i)
		m.End = i
		out = append(out, m)
	}
}

// memberKey returns key as a string, without allocating for the
// members of an OpenAI chat request.
func memberKey(key []byte) string {
	switch string(key) { // compared in place: no allocation
	case "model":
		return "model"
	case "messages":
		return "messages"
	case "temperature":
		return "temperature"
	case "top_p":
		return "top_p"
	case "max_tokens":
		return "max_tokens"
	case "max_completion_tokens":
		return "max_completion_tokens"
	case "stream":
		return "stream"
	case "stream_options":
		return "stream_options"
	case "user":
		return "user"
	case "n":
		return "n"
	case "stop":
		return "stop"
	case "tools":
		return "tools"
	case "tool_choice":
		return "tool_choice"
	case "response_format":
		return "response_format"
	case "seed":
		return "seed"
	case "metadata":
		return "metadata"
	}
	return string(key)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
		i++
	}
	return i
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 4 && string(raw) == "null"
}

// AppendBody appends r's body with the given top-level fields replaced
// (or added) to dst. Values in override must be valid JSON; a nil value
// removes the field. The other members are copied byte for byte.
func (r *Request) AppendBody(dst []byte, override map[string][]byte) []byte {
	dst = append(dst, '{')
	first := true
	for _, m := range r.Members {
		if _, ok := override[m.Key]; ok {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, r.Body[m.Start:m.End]...)
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
