package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/mask"
	"github.com/routelab/routelab/route"
)

// openLogFile returns the writer for an access or audit log path
// ("stderr" or a file; "" is handled by the caller) and its closer (nil
// for stderr or an injected writer).
func openLogFile(path string, override io.Writer) (io.Writer, io.Closer, error) {
	if override != nil {
		return override, nil, nil
	}
	if path == "stderr" {
		return os.Stderr, nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// setupLogs builds the audit and access loggers and the masker.
func (s *Server) setupLogs(o *Opts) error {
	c := o.Config
	var err error
	if s.audit, err = s.logTo(c.AuditLog.Path, o.AuditLog, "audit"); err != nil {
		return fmt.Errorf("audit_log.path: %w", err)
	}
	if c.AccessLog.Enabled {
		if s.access, err = s.logTo(c.AccessLog.Path, o.AccessLog, "access"); err != nil {
			return fmt.Errorf("access_log.path: %w", err)
		}
	}
	if !c.Privacy.Mask.Disabled {
		if s.masker, err = mask.New(mask.Opts{Detectors: c.Privacy.Mask.Detectors}); err != nil {
			return fmt.Errorf("privacy.mask: %w", err)
		}
	}
	if len(c.Privacy.MetadataAllowlist) > 0 {
		s.allowMeta = map[string]bool{}
		for _, k := range c.Privacy.MetadataAllowlist {
			s.allowMeta[k] = true
		}
	}
	return nil
}

// logTo returns a logger tagged log=name writing JSON lines to override,
// "stderr" or the file at path, or, for "", the server's own logger.
func (s *Server) logTo(path string, override io.Writer, name string) (*slog.Logger, error) {
	if path == "" && override == nil {
		return s.log.With("log", name), nil
	}
	w, cl, err := openLogFile(path, override)
	if err != nil {
		return nil, err
	}
	if cl != nil {
		s.closers = append(s.closers, cl)
	}
	return slog.New(slog.NewJSONHandler(w, nil)).With("log", name), nil
}

// closeLogs closes the access and audit log files.
func (s *Server) closeLogs() {
	for _, c := range s.closers {
		_ = c.Close()
	}
}

// maskingSink hands the next sink a copy of each record whose tags
// (caller tags and metadata, "key=value") are filtered by the metadata
// allowlist and masked: what reaches the decision log never holds a
// detected secret. The core's record is not touched.
type maskingSink struct {
	next  route.Sink
	m     *mask.Masker
	allow map[string]bool // nil = every key
	bufs  sync.Pool       // *[]string
}

func newMaskingSink(next route.Sink, m *mask.Masker, allow map[string]bool) route.Sink {
	if next == nil || (m == nil && allow == nil) {
		return next
	}
	return &maskingSink{next: next, m: m, allow: allow}
}

func tagKey(t string) string {
	if i := strings.IndexByte(t, '='); i >= 0 {
		return t[:i]
	}
	return t
}

func (ms *maskingSink) Log(rec *decision.Record) {
	tags := rec.Request.Features.Tags
	if len(tags) == 0 {
		ms.next.Log(rec)
		return
	}
	bp, _ := ms.bufs.Get().(*[]string)
	if bp == nil {
		bp = new([]string)
	}
	out := (*bp)[:0]
	for _, t := range tags {
		if ms.allow != nil && !ms.allow[tagKey(t)] {
			continue
		}
		out = append(out, ms.m.String(t))
	}
	cp := *rec // the sink copies what it keeps (route.Sink)
	cp.Request.Features.Tags = out
	if len(out) == 0 {
		cp.Request.Features.Tags = nil
	}
	ms.next.Log(&cp)
	clear(out)
	*bp = out
	ms.bufs.Put(bp)
}

// accessLog is the gin middleware writing one access log line per
// request once it is answered.
func (s *Server) accessLog(c *gin.Context) {
	t0 := time.Now()
	c.Next()
	r, w := c.Request, c.Writer
	h := w.Header()
	key, tenant := s.keys.identify(r)
	if v, ok := c.Get(ctxCaller); ok { // authenticated by the handler (JWTs included)
		if cl, _ := v.(*caller); cl != nil && cl.key != "" {
			key, tenant = cl.key, cl.tenant
		}
	}
	if tenant == "" {
		tenant = clip(r.Header.Get(HeaderTenant))
	}
	s.access.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("id", h.Get(HeaderRequestID)), slog.String("key", key), slog.String("tenant", tenant),
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)), slog.Int("status", w.Status()),
		slog.Float64("latency_ms", float64(time.Since(t0).Microseconds())/1000), slog.String("model", h.Get(HeaderModel)),
		slog.String("remote", r.RemoteAddr))
}

// maskPrompt returns body with the text of every message masked
// (privacy.mask.prompts), re-encoded only when something was found. A body
// that is not a JSON object with a messages array is returned unchanged:
// ParseRequest rejects it with a precise error.
func (s *Server) maskPrompt(body []byte) []byte {
	if s.masker == nil || !s.cfg.Privacy.Mask.Prompts {
		return body
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return body
	}
	var msgs []map[string]json.RawMessage
	if json.Unmarshal(top["messages"], &msgs) != nil {
		return body
	}
	changed := false
	for _, m := range msgs {
		if c, ok := s.maskContent(m["content"]); ok {
			m["content"], changed = c, true
		}
	}
	if !changed {
		return body
	}
	var err error
	if top["messages"], err = json.Marshal(msgs); err != nil {
		return body
	}
	out, err := json.Marshal(top)
	if err != nil {
		return body
	}
	return out
}

// maskContent masks a message content: a string, or an array of parts
// whose "text" members are masked. ok reports a change.
func (s *Server) maskContent(raw json.RawMessage) (json.RawMessage, bool) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if m := s.masker.String(str); m != str {
			b, err := json.Marshal(m)
			return b, err == nil
		}
		return raw, false
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return raw, false
	}
	changed := false
	for _, p := range parts {
		var t string
		if json.Unmarshal(p["text"], &t) != nil {
			continue
		}
		if m := s.masker.String(t); m != t {
			if b, err := json.Marshal(m); err == nil {
				p["text"], changed = b, true
			}
		}
	}
	if !changed {
		return raw, false
	}
	b, err := json.Marshal(parts)
	return b, err == nil
}
