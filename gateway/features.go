package gateway

import (
	"net/http"
	"sort"
	"strings"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
)

// tenantOf picks the request's tenant: the key's tenant unless the config
// trusts the header, then X-Routelab-Tenant, metadata.tenant, the key name.
func (s *Server) tenantOf(cl *caller, r *http.Request, req *provider.Request) string {
	if cl.tenant != "" && !s.cfg.Auth.TrustTenantHeader {
		return cl.tenant
	}
	if t := r.Header.Get(HeaderTenant); t != "" {
		return t
	}
	if t := req.Metadata["tenant"]; t != "" {
		return t
	}
	if cl.tenant != "" {
		return cl.tenant
	}
	return cl.key
}

// fillFeatures describes the request for the policy, reusing f's vector
// and tag storage.
func (s *Server) fillFeatures(f *decision.Features, r *http.Request, req *provider.Request, tenant string) {
	vec, tags := f.Vector[:0], f.Tags[:0]
	*f = decision.Features{Tenant: tenant, Time: s.now(), Vector: vec}
	size := 0
	for i := range req.Messages {
		size += len(req.Messages[i].Content)
	}
	f.PromptTokens = 4*len(req.Messages) + size/4
	switch {
	case r.Header.Get(HeaderTask) != "":
		f.Task = r.Header.Get(HeaderTask)
	case req.Metadata["task"] != "":
		f.Task = req.Metadata["task"]
	default:
		f.Task = GuessTask(req.Messages)
	}
	if h := r.Header.Get(HeaderTags); h != "" {
		for _, t := range strings.Split(h, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	for k, v := range req.Metadata {
		if k != "tenant" && k != "task" {
			tags = append(tags, k+"="+v)
		}
	}
	if len(tags) > 1 {
		sort.Strings(tags)
	}
	if len(tags) > 0 {
		f.Tags = tags
	}
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
