package gateway

import (
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
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
func (s *Server) fillFeatures(f *policy.Features, r *http.Request, req *provider.Request, tenant string) {
	vec, tags := f.Vector[:0], f.Tags[:0]
	*f = policy.Features{Tenant: tenant, Time: s.now(), Vector: vec}
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

var (
	codeHints      = []string{"```", "func ", "def ", "class ", "stack trace", "traceback", "compile", "bug", "python", "golang", "javascript", "typescript", "rust", "sql", "regex", "function", "refactor", "unit test", "exception"}
	mathHints      = []string{"solve", "equation", "integral", "derivative", "prove", "calculate", "compute", "probability", "theorem", "algebra"}
	summarizeHints = []string{"summarize", "summarise", "summary", "tl;dr", "tldr", "key points"}
	translateHints = []string{"translate", "translation", "in french", "in german", "in spanish", "into english"}
	extractHints   = []string{"extract", "json schema", "parse the following", "fill the fields"}
	arithmetic     = regexp.MustCompile(`\d\s*[-+*/^=]\s*\d`)
)

// GuessTask is the cheap task heuristic used when the caller names none:
// keywords in the last user message (its first 4 KiB) select "code",
// "math", "summarize", "translate" or "extract"; anything else is "chat".
func GuessTask(msgs []provider.Message) string {
	var text string
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			text = msgs[i].Text()
			break
		}
	}
	if len(text) > 4096 {
		text = text[:4096]
	}
	t := strings.ToLower(text)
	has := func(hints []string) bool {
		for _, h := range hints {
			if strings.Contains(t, h) {
				return true
			}
		}
		return false
	}
	switch {
	case has(codeHints):
		return "code"
	case has(mathHints) || arithmetic.MatchString(t):
		return "math"
	case has(summarizeHints):
		return "summarize"
	case has(translateHints):
		return "translate"
	case has(extractHints):
		return "extract"
	}
	return "chat"
}
