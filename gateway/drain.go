package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// drainListener lets the http.Server shut down its listener while the
// socket stays open: once the server has closed it (Shutdown), connections
// still arriving get a bare 503 "draining" (so /readyz answers 503 during
// the drain instead of refusing the connection) until closeAll closes the
// socket at the end of the drain.
type drainListener struct {
	net.Listener
	conns chan net.Conn
	done  chan struct{} // closed by Close (the http.Server's Shutdown)
	once  sync.Once
	errMu sync.Mutex
	err   error // the real listener's Accept error
}

func newDrainListener(ln net.Listener) *drainListener {
	d := &drainListener{Listener: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	go d.pump()
	return d
}

func (d *drainListener) pump() {
	defer close(d.conns)
	var delay time.Duration
	for {
		c, err := d.Listener.Accept()
		//nolint:staticcheck // Temporary is what net/http's own accept loop retries on (EMFILE, ...)
		if ne, ok := err.(net.Error); ok && ne.Temporary() {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if err != nil {
			d.errMu.Lock()
			d.err = err
			d.errMu.Unlock()
			return
		}
		select {
		case d.conns <- c:
		case <-d.done:
			go answerDraining(c)
		}
	}
}

// Accept hands the http.Server the next connection until Close.
func (d *drainListener) Accept() (net.Conn, error) {
	select {
	case c, ok := <-d.conns:
		if ok {
			return c, nil
		}
		d.errMu.Lock()
		defer d.errMu.Unlock()
		return nil, d.err
	case <-d.done:
		return nil, net.ErrClosed
	}
}

// Close detaches the http.Server; the socket stays open until closeAll.
func (d *drainListener) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

// closeAll closes the socket.
func (d *drainListener) closeAll() error {
	_ = d.Close()
	return d.Listener.Close()
}

// answerDraining reads one request from c and answers 503.
func answerDraining(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	_ = req.Body.Close()
	res := &http.Response{StatusCode: http.StatusServiceUnavailable, ProtoMajor: 1, ProtoMinor: 1, Close: true,
		Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Retry-After": {"1"}}, ContentLength: int64(len("draining\n")),
		Body: io.NopCloser(strings.NewReader("draining\n"))}
	w := bufio.NewWriter(c)
	if res.Write(w) == nil {
		_ = w.Flush()
	}
}
