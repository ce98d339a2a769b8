package gateway

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
)

// tenantOf picks the request's tenant. A key trusted to name tenants
// (auth.keys[].tenant_header, or auth.trust_tenant_header for all keys)
// and anonymous development traffic name it with X-Routelab-Tenant, else
// metadata.tenant; otherwise, and when they name none, it is the key's
// tenant, else the key's name. So a key cannot leave its tenant's rate
// limit by rotating the header. A tenant name longer than
// limits.max_tag_bytes is refused.
func (s *Server) tenantOf(cl *caller, h *Hints, req *provider.Request) (string, *APIError) {
	if cl.key == "" || s.trusted[cl.key] {
		t := h.Tenant
		if t == "" {
			t = req.Metadata["tenant"]
		}
		if len(t) > s.lim.MaxTagBytes {
			return "", s.limitErr("tenant_too_long", fmt.Sprintf("the tenant name has %d bytes", len(t)), "limits.max_tag_bytes", s.lim.MaxTagBytes)
		}
		if t != "" {
			return t, nil
		}
	}
	if cl.tenant != "" {
		return cl.tenant, nil
	}
	return cl.key, nil
}

// Hints are a request's routing hints: the X-Routelab-Tenant, -Task,
// -Tags and -Timeout headers of a REST request, or their equivalents on
// another transport (the WebSocket upgrade's headers, gRPC fields or
// metadata). Empty means not given.
type Hints struct {
	Tenant, Task string
	// Tags is comma-separated, as in X-Routelab-Tags.
	Tags string
	// Timeout shortens request_timeout: a Go duration or seconds.
	Timeout string
}

// headerHints reads the X-Routelab-* routing headers.
func headerHints(h http.Header) Hints {
	return Hints{Tenant: h.Get(HeaderTenant), Task: h.Get(HeaderTask), Tags: h.Get(HeaderTags), Timeout: h.Get(HeaderTimeout)}
}

// limitErr is the 400 for a request beyond one of the limits: block.
func (s *Server) limitErr(code, what, key string, limit int) *APIError {
	return apiErr(http.StatusBadRequest, typeInvalidRequest, code, fmt.Sprintf("%s, above the limit of %d (%s)", what, limit, key))
}

// fillFeatures describes the request for the policy, reusing f's vector
// and tag storage. Tags (X-Routelab-Tags and metadata pairs) and the task
// are bounded by the limits: block, checked before anything is kept: the
// decision core keeps Features until feedback.
func (s *Server) fillFeatures(f *decision.Features, hints *Hints, req *provider.Request, tenant string) *APIError {
	lim := &s.lim
	vec, tags := f.Vector[:0], f.Tags[:0]
	*f = decision.Features{Tenant: tenant, Time: s.now(), Vector: vec}
	size := 0
	for i := range req.Messages {
		size += len(req.Messages[i].Content)
	}
	f.PromptTokens = 4*len(req.Messages) + size/4
	if s.prompt {
		f.Prompt = promptText(req.Messages)
	}
	switch {
	case hints.Task != "":
		f.Task = hints.Task
	case req.Metadata["task"] != "":
		f.Task = req.Metadata["task"]
	default:
		f.Task = GuessTask(req.Messages)
	}
	if len(f.Task) > lim.MaxTagBytes {
		return s.limitErr("task_too_long", fmt.Sprintf("the task name has %d bytes", len(f.Task)), "limits.max_tag_bytes", lim.MaxTagBytes)
	}
	total := 0
	add := func(t string) *APIError {
		if len(tags) >= lim.MaxTags {
			return s.limitErr("too_many_tags", "the request has more tags (X-Routelab-Tags and metadata pairs)", "limits.max_tags", lim.MaxTags)
		}
		if len(t) > lim.MaxTagBytes {
			return s.limitErr("tag_too_long", fmt.Sprintf("a tag of %d bytes", len(t)), "limits.max_tag_bytes", lim.MaxTagBytes)
		}
		if total += len(t); total > lim.MaxTagsBytes {
			return s.limitErr("tags_too_large", "the tags (X-Routelab-Tags and metadata pairs) together are larger", "limits.max_tags_bytes", lim.MaxTagsBytes)
		}
		tags = append(tags, t)
		return nil
	}
	if h := hints.Tags; h != "" {
		if len(h) > lim.MaxTagsBytes+lim.MaxTags*8 { // room for separators; refuse before splitting
			return s.limitErr("tags_too_large", fmt.Sprintf("the %s header has %d bytes", HeaderTags, len(h)), "limits.max_tags_bytes", lim.MaxTagsBytes)
		}
		for h != "" {
			var t string
			t, h, _ = strings.Cut(h, ",")
			if t = strings.TrimSpace(t); t != "" {
				if e := add(t); e != nil {
					f.Tags = tags[:0]
					return e
				}
			}
		}
	}
	for k, v := range req.Metadata {
		if k != "tenant" && k != "task" {
			if len(k)+1+len(v) > lim.MaxTagBytes { // refuse before concatenating
				f.Tags = tags[:0]
				return s.limitErr("tag_too_long", fmt.Sprintf("metadata %q of %d bytes", truncate(k, 64), len(k)+1+len(v)), "limits.max_tag_bytes", lim.MaxTagBytes)
			}
			if e := add(k + "=" + v); e != nil {
				f.Tags = tags[:0]
				return e
			}
		}
	}
	if len(tags) > 1 {
		sort.Strings(tags)
	}
	if len(tags) > 0 {
		f.Tags = tags
	}
	return nil
}

// truncate cuts s to at most n bytes, for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Task words, by priority: a request is "code" if any code word occurs,
// else "math", and so on; anything else is "chat".
const (
	taskChat uint8 = iota
	taskExtract
	taskTranslate
	taskSummarize
	taskMath
	taskCode
)

var taskNames = [...]string{"chat", "extract", "translate", "summarize", "math", "code"}

// TaskNames lists the task types GuessTask produces.
func TaskNames() []string { return append([]string(nil), taskNames[:]...) }

var taskWords = map[string]uint8{
	"func": taskCode, "def": taskCode, "class": taskCode, "traceback": taskCode, "stacktrace": taskCode,
	"compile": taskCode, "compiler": taskCode, "bug": taskCode, "debug": taskCode, "python": taskCode,
	"golang": taskCode, "javascript": taskCode, "typescript": taskCode, "rust": taskCode, "sql": taskCode,
	"regex": taskCode, "function": taskCode, "refactor": taskCode, "exception": taskCode, "code": taskCode,
	"solve": taskMath, "equation": taskMath, "integral": taskMath, "derivative": taskMath, "prove": taskMath,
	"calculate": taskMath, "compute": taskMath, "probability": taskMath, "theorem": taskMath, "algebra": taskMath,
	"summarize": taskSummarize, "summarise": taskSummarize, "summary": taskSummarize, "tldr": taskSummarize,
	"translate": taskTranslate, "translation": taskTranslate,
	"extract": taskExtract,
}

// GuessTask is the cheap task heuristic used when the caller names none.
// It scans the raw content of the last user message (its first 2 KiB) once,
// without allocating: whole words from a small list select "code", "math",
// "summarize", "translate" or "extract" (in that priority), as do a code
// fence (code) and digit-operator-digit arithmetic (math); anything else
// is "chat".
func GuessTask(msgs []provider.Message) string {
	var c []byte
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			c = msgs[i].Content
			break
		}
	}
	if len(c) > 2048 {
		c = c[:2048]
	}
	best := taskChat
	var word [16]byte
	n := 0
	lastDigit, opAfterDigit := false, false
	flush := func() {
		if n > 0 && n <= len(word) {
			if t, ok := taskWords[string(word[:n])]; ok && t > best {
				best = t
			}
		}
		n = 0
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case ch >= 'A' && ch <= 'Z':
			ch += 'a' - 'A'
			fallthrough
		case ch >= 'a' && ch <= 'z', ch == ';' && n == 2 && word[0] == 't' && word[1] == 'l':
			if ch == ';' {
				continue // "tl;dr" reads as "tldr"
			}
			if n < len(word) {
				word[n] = ch
			}
			n++
			lastDigit, opAfterDigit = false, false
		case ch >= '0' && ch <= '9':
			flush()
			if opAfterDigit && best < taskMath {
				best = taskMath
			}
			lastDigit, opAfterDigit = true, false
		case ch == '\\':
			flush()
			i++ // a JSON escape: skip its letter
			lastDigit, opAfterDigit = false, false
		case ch == ' ':
			flush()
		case ch == '+' || ch == '-' || ch == '*' || ch == '/' || ch == '^' || ch == '=':
			flush()
			opAfterDigit = lastDigit || opAfterDigit
			lastDigit = false
		case ch == '`' && i+2 < len(c) && c[i+1] == '`' && c[i+2] == '`':
			flush()
			best = taskCode
		default:
			flush()
			lastDigit, opAfterDigit = false, false
		}
	}
	flush()
	return taskNames[best]
}

// promptText is the prompt as text features see it: the messages' texts
// joined with newlines (one message's text as is, so a benchmark prompt
// sent as one user message encodes as the benchmark row does).
func promptText(msgs []provider.Message) string {
	if len(msgs) == 1 {
		return msgs[0].Text()
	}
	var b strings.Builder
	for i := range msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(msgs[i].Text())
	}
	return b.String()
}
