package gateway

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// minReclaimIdle is how long a connection must have been idle before it
// may be closed to make room: a client that has just been answered may be
// writing its next request on it already (and a client cannot safely
// retry a POST the server closed under it).
const minReclaimIdle = time.Second

// LimitListener returns a listener that keeps at most n connections open
// at once. n <= 0 returns ln unchanged.
//
// It takes a connection from the kernel before it has a place for it.
// While one waits for a place, Crowded is true, and the gateway answers
// every request with "Connection: close", so that connections free their
// places as their answers end (the client knows not to reuse them, so no
// request is lost). A connection that stays idle between requests (an
// HTTP keep-alive connection, as the ConnState hook reports: see
// ConnLimiter) for minReclaimIdle is closed to make room, the one idle
// longest first, as nginx reuses keep-alive connections when it runs out.
// Without these, clients that keep idle connections open (every HTTP
// client's pool) would hold every place while other connections waited in
// the accept queue until their requests timed out.
func LimitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return &ConnLimiter{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), idleCh: make(chan struct{}, 1),
		minIdle: minReclaimIdle}
}

// ConnLimiter is the listener LimitListener returns. Its ConnState, set
// as the http.Server's ConnState hook, tells it which connections are
// idle; a listener whose connections it is not told about (gRPC) only
// waits for them to close.
type ConnLimiter struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	idleCh    chan struct{} // poked when a connection turns idle
	minIdle   time.Duration // minReclaimIdle; changed in tests

	mu         sync.Mutex
	head, tail *limitConn // idle connections, longest idle first
	reclaimed  atomic.Uint64
	waiting    atomic.Int32 // connections accepted, waiting for a place
}

// Crowded reports whether a connection is waiting for a place: answers
// should then close their connections ("Connection: close").
func (l *ConnLimiter) Crowded() bool { return l.waiting.Load() > 0 }

// Accept returns the next connection once there is a place for it.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.sem <- struct{}{}:
		return &limitConn{Conn: c, l: l}, nil
	default:
	}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	var wait *time.Timer
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		default:
		}
		reclaimed, retry := l.reclaimIdle(time.Now())
		if reclaimed {
			continue
		}
		var again <-chan time.Time
		if retry > 0 {
			if wait == nil {
				wait = time.NewTimer(retry)
			} else {
				wait.Reset(retry)
			}
			again = wait.C
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		case <-l.idleCh:
		case <-again:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener; connections already accepted stay open.
func (l *ConnLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// Open is the number of connections open now.
func (l *ConnLimiter) Open() int { return len(l.sem) }

// Reclaimed counts idle connections closed to make room for a new one.
func (l *ConnLimiter) Reclaimed() uint64 { return l.reclaimed.Load() }

// ConnState is the http.Server's ConnState hook: a connection that turns
// idle (between keep-alive requests) may be reclaimed; any other state
// takes it off the idle list. Connections this limiter did not accept
// (or wrapped other than by crypto/tls) are ignored.
func (l *ConnLimiter) ConnState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		if w, isWrapped := c.(interface{ NetConn() net.Conn }); isWrapped {
			lc, ok = w.NetConn().(*limitConn)
		}
	}
	if !ok || lc.l != l {
		return
	}
	l.mu.Lock()
	l.unlink(lc)
	if st == http.StateIdle && !lc.closed {
		lc.prev, lc.next = l.tail, nil
		if l.tail != nil {
			l.tail.next = lc
		} else {
			l.head = lc
		}
		l.tail, lc.idle, lc.idleSince = lc, true, time.Now()
	}
	l.mu.Unlock()
	if st == http.StateIdle {
		select {
		case l.idleCh <- struct{}{}:
		default:
		}
	}
}

// unlink takes c off the idle list (l.mu held).
func (l *ConnLimiter) unlink(c *limitConn) {
	if !c.idle {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next, c.idle = nil, nil, false
}

// reclaimIdle closes the connection idle longest, if it has been idle at
// least minReclaimIdle and its client has not begun a new request (no
// bytes waiting on the socket); its place frees as it closes. Otherwise
// retry, when > 0, is how long until the one idle longest is old enough.
func (l *ConnLimiter) reclaimIdle(now time.Time) (reclaimed bool, retry time.Duration) {
	l.mu.Lock()
	var c *limitConn
	for c = l.head; c != nil; c = c.next {
		if wait := l.minIdle - now.Sub(c.idleSince); wait > 0 {
			l.mu.Unlock()
			return false, wait
		}
		if !hasPendingInput(c.Conn) {
			l.unlink(c)
			break
		}
	}
	l.mu.Unlock()
	if c == nil {
		return false, 0
	}
	l.reclaimed.Add(1)
	_ = c.Close()
	return true, 0
}

type limitConn struct {
	net.Conn
	l          *ConnLimiter
	once       sync.Once
	prev, next *limitConn // on l's idle list (l.mu)
	idle       bool       // l.mu
	idleSince  time.Time  // l.mu
	closed     bool       // l.mu
}

// Close closes the connection and frees its place once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.unlink(c)
		c.closed = true
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
