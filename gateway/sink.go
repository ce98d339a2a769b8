package gateway

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/routelab/routelab/gateway/provider"
)

// ChatSink receives one chat answer, whatever carries it: an HTTP
// response (JSON or Server-Sent Events), WebSocket messages, a gRPC
// response or stream. The chat path calls it from one goroutine, in this
// order: RequestID; then Fail, or Policy followed by exactly one of Fail,
// Answer (a non-streamed answer), or Start, Chunk…, End (a stream).
//
// The last call (Fail, Answer or End) comes only after the decision is
// logged, so a client holding the request id finds it ready for feedback.
type ChatSink interface {
	// RequestID is the request's id (the X-Routelab-Request-Id header).
	RequestID(id string)
	// Policy names the policy that decided (X-Routelab-Policy).
	Policy(name string)
	// Fail answers e before any answer bytes went out. model is the
	// model that failed ("" when none was chosen); retryAfter, with a 429,
	// is how long to wait (0 = unknown).
	Fail(e *APIError, model string, retryAfter time.Duration)
	// Answer sends a whole chat.completion JSON object, answered by model
	// (its "model" member already the catalogue id).
	Answer(model string, body []byte)
	// Start begins a stream answered by model. Chunk sends one
	// chat.completion.chunk JSON object (its "model" member the catalogue
	// id; b is reused after Chunk returns). An error from either means the
	// client is gone: the attempt ends, and it does not count against the
	// model.
	Start(model string) error
	Chunk(b []byte) error
	// End ends a started stream: e == nil after the last chunk, with the
	// stream's token usage; else the error that cut it.
	End(e *APIError, usage provider.Usage)
}

// transport names the front end a chat request came through (a metric
// label).
type transport uint8

const (
	transportHTTP transport = iota
	transportWebSocket
	transportGRPC
)

var transportNames = [...]string{"http", "websocket", "grpc"}

func (t transport) String() string { return transportNames[t] }

// route names the chat route of t in errors (insufficient_scope).
func (t transport) route() string {
	switch t {
	case transportWebSocket:
		return "GET /v1/ws"
	case transportGRPC:
		return "routelab.v1.Chat"
	}
	return "POST /v1/chat/completions"
}

// httpSink answers a REST request: JSON, or Server-Sent Events for a
// stream. Every write has a deadline (server.write_timeout, and no later
// than the request's own deadline while streaming), so a client that
// stops reading fails the attempt and frees its provider slot instead of
// blocking it.
type httpSink struct {
	s  *Server
	w  gin.ResponseWriter
	r  *http.Request
	rc http.ResponseController
	wt time.Duration // server.write_timeout, per write
	// end: no stream write outlives it (the request's deadline); zero = none.
	end time.Time
	buf []byte
	in  chatIn // the request, for Server.chat
}

// getHTTPSink takes a sink for one REST request from the server's pool
// (it keeps its SSE buffer between requests); putHTTPSink returns it.
func (s *Server) getHTTPSink(w gin.ResponseWriter, r *http.Request) *httpSink {
	h, _ := s.sinks.Get().(*httpSink)
	if h == nil {
		h = &httpSink{s: s}
	}
	// gin's Flush swallows the write error: flush the net/http writer
	// underneath (gin's Write has sent the headers by then).
	var base http.ResponseWriter = w
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		base = u.Unwrap()
	}
	h.w, h.r, h.rc, h.wt, h.end = w, r, *http.NewResponseController(base), s.srv.WriteTimeout, time.Time{}
	return h
}

func (s *Server) putHTTPSink(h *httpSink) {
	buf := h.buf
	if cap(buf) > 64<<10 {
		buf = nil // do not keep a huge chunk's buffer
	}
	*h = httpSink{s: s, buf: buf[:0]}
	s.sinks.Put(h)
}

// readBody implements bodySource.
func (h *httpSink) readBody() ([]byte, *APIError) { return h.s.readBody(h.r, h.w) }

// deadline bounds the stream's writes by the request's deadline.
func (h *httpSink) deadline(t time.Time) { h.end = t }

func (h *httpSink) RequestID(id string) { h.w.Header()[HeaderRequestID] = []string{id} }
func (h *httpSink) Policy(name string)  { h.w.Header()[HeaderPolicy] = h.s.policyHeader(name) }

// modelHeader sets X-Routelab-Model, without allocating for a catalogue id.
func (h *httpSink) modelHeader(model string) {
	if model == "" {
		return
	}
	if a := h.s.arms[model]; a != nil {
		h.w.Header()[HeaderModel] = a.idHdr
		return
	}
	h.w.Header().Set(HeaderModel, model)
}

func (h *httpSink) Fail(e *APIError, model string, wait time.Duration) {
	h.modelHeader(model)
	if e.Status == http.StatusTooManyRequests {
		h.w.Header().Set("Retry-After", retryAfter(wait))
	}
	h.final(func() { writeAPIError(h.w, e) })
}

func (h *httpSink) Answer(model string, body []byte) {
	h.modelHeader(model)
	h.final(func() {
		h.w.Header()["Content-Type"] = jsonContentType
		h.w.WriteHeader(http.StatusOK)
		_, _ = h.w.Write(body)
	})
}

// final writes the answer under server.write_timeout, then disarms the
// write deadline so that it cannot fail a later request on the same
// keep-alive connection.
func (h *httpSink) final(f func()) {
	if h.wt > 0 {
		_ = h.rc.SetWriteDeadline(time.Now().Add(h.wt))
	}
	f()
	_ = h.rc.SetWriteDeadline(time.Time{})
}

var (
	sseData = []byte("data: ")
	sseEnd  = []byte("\n\n")
	sseDone = []byte("data: [DONE]\n\n")
)

func (h *httpSink) Start(model string) error {
	hd := h.w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Connection", "keep-alive")
	hd.Set("X-Accel-Buffering", "no")
	h.modelHeader(model)
	h.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *httpSink) Chunk(b []byte) error {
	h.buf = append(append(append(h.buf[:0], sseData...), b...), sseEnd...)
	return h.write(h.buf)
}

// End writes [DONE], or an error event (which the OpenAI SDKs raise) and
// no [DONE].
func (h *httpSink) End(e *APIError, _ provider.Usage) {
	h.end = time.Time{}
	if e != nil {
		_ = h.write(append(append(append(h.buf[:0], sseData...), e.body()...), sseEnd...))
	} else {
		_ = h.write(sseDone)
	}
	_ = h.rc.SetWriteDeadline(time.Time{})
}

// write writes and flushes b under a write deadline.
func (h *httpSink) write(b []byte) error {
	if h.wt > 0 {
		dl := time.Now().Add(h.wt)
		if !h.end.IsZero() && h.end.Before(dl) {
			dl = h.end
		}
		_ = h.rc.SetWriteDeadline(dl)
	}
	if _, err := h.w.Write(b); err != nil {
		return provider.ErrClientGone
	}
	if err := h.rc.Flush(); err != nil {
		return provider.ErrClientGone
	}
	return nil
}

// frontMetrics count chat requests by transport and open WebSocket
// connections; every other chat metric is shared by the transports.
type frontMetrics struct {
	requests [len(transportNames)]prometheus.Counter
	wsConns  prometheus.Gauge
}

func newFrontMetrics(reg *prometheus.Registry) *frontMetrics {
	f := &frontMetrics{}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_chat_requests_total", Help: "Chat completion requests by transport (http, websocket, grpc).",
	}, []string{"transport"})
	for i, n := range transportNames {
		f.requests[i] = vec.WithLabelValues(n)
	}
	f.wsConns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "routelab_websocket_connections", Help: "Open WebSocket connections on /v1/ws.",
	})
	reg.MustRegister(vec, f.wsConns)
	return f
}

func (m *metrics) transport(t transport) { m.fronts.requests[t].Inc() }
