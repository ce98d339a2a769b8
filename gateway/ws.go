package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/gateway/provider"
)

// WebSocket chat at GET /v1/ws.
//
// The upgrade request authenticates the connection with the REST
// credential (Authorization: Bearer <key>) and may carry the
// X-Routelab-Tenant, -Task, -Tags and -Timeout headers, which then hold for
// every request on the connection. There is deliberately no query-string
// or subprotocol form of the key: URLs end up in proxy and access logs
// and browser history, and a subprotocol value is echoed in the handshake.
// Browsers cannot set the header, so a browser application reaches the
// gateway through its own backend.
//
// Each client message (text or binary) is one chat-completions request
// JSON, exactly as POST /v1/chat/completions takes it. Requests on one
// connection are answered one after another, in order: the answer to a
// request is always streamed (its "stream" member is ignored) as text
// messages, each one chat.completion.chunk JSON object as in the SSE data:
// lines, and ends with exactly one of
//
//	{"object":"routelab.done","request_id":"rl-…","model":"…","policy":"…","usage":{…}}
//	{"error":{"message","type","param","code"},"request_id":"rl-…","status":429,"retry_after":2}
//
// (an error before or during the stream; request_id is absent only when
// the request was refused before it got one). A client may send its next
// request before the previous answer has ended; up to wsMaxQueued wait,
// and a client sending more is disconnected (close code 1008). A message
// above max_body_bytes closes the connection (1009). A connection without
// a request for server.idle_timeout is closed (1000), and during the drain
// connections are closed (1001) once their current answer has ended
// (requests queued behind it are not answered).
// Closing the connection mid-stream ends the request as a REST client
// leaving does: the attempt is not counted against the model.

// wsMaxQueued is how many requests a client may send ahead of the answer
// in progress.
const wsMaxQueued = 4

// wsConns tracks the open WebSocket connections for the drain.
type wsConns struct {
	mu      sync.Mutex
	drainc  chan struct{} // closed when the drain begins
	drained bool
	conns   map[*websocket.Conn]struct{}
	wg      sync.WaitGroup
}

func newWSConns() *wsConns {
	return &wsConns{drainc: make(chan struct{}), conns: map[*websocket.Conn]struct{}{}}
}

// add registers c; false when the drain has begun.
func (w *wsConns) add(c *websocket.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drained {
		return false
	}
	w.conns[c] = struct{}{}
	w.wg.Add(1)
	return true
}

func (w *wsConns) remove(c *websocket.Conn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
	w.wg.Done()
}

// drain asks every connection to close once its current answer has ended
// and waits for them until ctx ends; then it cuts the rest.
func (w *wsConns) drain(ctx context.Context) error {
	w.mu.Lock()
	if !w.drained {
		w.drained = true
		close(w.drainc)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	n := len(w.conns)
	for c := range w.conns {
		_ = c.CloseNow()
	}
	w.mu.Unlock()
	<-done
	return fmt.Errorf("websocket drain: %d connections cut at the shutdown timeout", n)
}

func (s *Server) handleWS(c *gin.Context) {
	r, w := c.Request, c.Writer
	cred := bearer(r)
	if _, aerr := s.keys.authenticateToken(cred); aerr != nil {
		s.reject(w, aerr)
		return
	}
	if s.draining.Load() {
		w.Header().Set("Retry-After", "1")
		s.reject(w, apiErr(http.StatusServiceUnavailable, typeUnavailable, "draining", "the gateway is shutting down"))
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client (400/403/426)
	}
	if !s.ws.add(conn) {
		_ = conn.Close(websocket.StatusGoingAway, "the gateway is shutting down")
		return
	}
	defer s.ws.remove(conn)
	s.m.fronts.wsConns.Inc()
	defer s.m.fronts.wsConns.Dec()
	conn.SetReadLimit(s.cfg.MaxBodyBytes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wc := &wsConn{s: s, c: conn, ctx: ctx, cred: cred, hints: headerHints(r.Header), remote: r.RemoteAddr}
	msgs := make(chan []byte, wsMaxQueued)
	go wc.read(msgs, cancel)
	if code, reason, gone := wc.serve(msgs); gone {
		_ = conn.CloseNow() // the reader has seen the connection end
	} else {
		_ = conn.Close(code, reason)
	}
	cancel()
	for range msgs { // wait for the reader to end
	}
}

type wsConn struct {
	s      *Server
	c      *websocket.Conn
	ctx    context.Context // cancelled when the client is gone
	cred   string
	hints  Hints
	remote string
}

// read reads client messages until the connection fails or closes, then
// cancels the connection's context (which ends a request in flight as a
// client leaving does) and closes msgs. It never blocks on msgs: a client
// too far ahead is disconnected.
func (wc *wsConn) read(msgs chan<- []byte, cancel context.CancelFunc) {
	defer close(msgs)
	defer cancel()
	for {
		_, data, err := wc.c.Read(wc.ctx)
		if err != nil {
			return
		}
		select {
		case msgs <- data:
		default:
			_ = wc.c.Close(websocket.StatusPolicyViolation, fmt.Sprintf("more than %d requests sent ahead of the answer in progress", wsMaxQueued))
			return
		}
	}
}

// serve answers messages in order until the client leaves, the
// connection idles past server.idle_timeout or the drain begins; it
// returns the close code and reason, or gone when the connection has
// ended already.
func (wc *wsConn) serve(msgs <-chan []byte) (_ websocket.StatusCode, _ string, gone bool) {
	s := wc.s
	idle := time.NewTimer(s.srv.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return 0, "", true
			}
			wc.answer(m)
			if wc.ctx.Err() != nil {
				return 0, "", true
			}
			select {
			case <-s.ws.drainc:
				return websocket.StatusGoingAway, "the gateway is shutting down", false
			default:
			}
			idle.Reset(s.srv.IdleTimeout)
		case <-idle.C:
			return websocket.StatusNormalClosure, fmt.Sprintf("no request for %v (server.idle_timeout)", s.srv.IdleTimeout), false
		case <-s.ws.drainc:
			return websocket.StatusGoingAway, "the gateway is shutting down", false
		}
	}
}

// answer runs one request (a client message) through the chat path.
func (wc *wsConn) answer(m []byte) {
	s := wc.s
	out := &wsSink{c: wc.c, ctx: wc.ctx, wt: s.srv.WriteTimeout}
	// The connection's read limit has bounded the message to max_body_bytes.
	s.chatVia(wc.ctx, transportWebSocket, &ChatCall{Credential: wc.cred, Body: m, Hints: wc.hints, Stream: true,
		Path: "/v1/ws", Remote: wc.remote}, out)
}

// wsSink answers one request with WebSocket messages.
type wsSink struct {
	c      *websocket.Conn
	ctx    context.Context
	wt     time.Duration
	id     string
	policy string
	model  string
}

// wsDone is the message that ends a successful answer.
type wsDone struct {
	Object    string         `json:"object"`
	RequestID string         `json:"request_id"`
	Model     string         `json:"model"`
	Policy    string         `json:"policy"`
	Usage     provider.Usage `json:"usage"`
}

// wsError is the message that ends a failed answer: OpenAI's error
// object beside the request id, the HTTP status REST would have answered
// and, with a 429, the seconds to wait.
type wsError struct {
	Error      *APIError `json:"error"`
	RequestID  string    `json:"request_id,omitempty"`
	Status     int       `json:"status"`
	Model      string    `json:"model,omitempty"`
	RetryAfter int64     `json:"retry_after,omitempty"`
}

func (o *wsSink) RequestID(id string) { o.id = id }
func (o *wsSink) Policy(name string)  { o.policy = name }

// write sends one text message within server.write_timeout; a client
// that does not read in time is disconnected (coder/websocket closes a
// connection whose write context ends).
func (o *wsSink) write(b []byte) error {
	ctx := o.ctx
	if o.wt > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.wt)
		defer cancel()
	}
	if err := o.c.Write(ctx, websocket.MessageText, b); err != nil {
		return provider.ErrClientGone
	}
	return nil
}

func (o *wsSink) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // plain fields always marshal
	}
	_ = o.write(b)
}

func (o *wsSink) Fail(e *APIError, model string, wait time.Duration) {
	m := wsError{Error: e, RequestID: o.id, Status: e.Status, Model: model}
	if e.Status == http.StatusTooManyRequests || wait > 0 {
		m.RetryAfter = int64(max(1, (wait+time.Second-1)/time.Second))
	}
	o.writeJSON(m)
}

// Answer is not used (WebSocket answers always stream) but keeps the
// contract: the completion, then the end.
func (o *wsSink) Answer(model string, body []byte) {
	if o.write(body) == nil {
		o.model = model
		o.End(nil, provider.Usage{})
	}
}

func (o *wsSink) Start(model string) error {
	o.model = model
	return o.ctx.Err()
}

func (o *wsSink) Chunk(b []byte) error { return o.write(b) }

func (o *wsSink) End(e *APIError, u provider.Usage) {
	if e != nil {
		o.Fail(e, o.model, 0)
		return
	}
	o.writeJSON(wsDone{Object: "routelab.done", RequestID: o.id, Model: o.model, Policy: o.policy, Usage: u})
}

// admit takes an in-flight slot (server.max_inflight); the caller
// releases it with leave. Beyond the cap it takes none and returns the
// 503 to answer.
func (s *Server) admit() *APIError {
	if s.srv.MaxInFlight < 0 {
		return nil
	}
	if n := s.inflight.Add(1); n > int64(s.srv.MaxInFlight) {
		s.inflight.Add(-1)
		return apiErr(http.StatusServiceUnavailable, typeUnavailable, "server_busy",
			fmt.Sprintf("the gateway is handling its maximum of %d concurrent requests (server.max_inflight)", s.srv.MaxInFlight))
	}
	return nil
}

// leave releases a slot taken by admit.
func (s *Server) leave() {
	if s.srv.MaxInFlight >= 0 {
		s.inflight.Add(-1)
	}
}
