package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/policy"
)

// testCA issues certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for cn; server certificates are
// valid for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// serveTLS runs the gateway with Serve on loopback under the given tls:
// block and returns it with its address.
func serveTLS(t *testing.T, tlsYAML string) (*Server, string) {
	t.Helper()
	cfg, err := ParseConfig([]byte("tls: " + tlsYAML + `
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return srv, ln.Addr().String()
}

// tlsGet makes one request on a fresh connection and returns the status
// and the serial number of the server's leaf certificate.
func tlsGet(roots *x509.CertPool, certs []tls.Certificate, addr string) (int, int64, error) {
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if len(certs) > 0 {
		// Always present the certificate: Go's default sends none when its
		// issuer is not among the CAs the server asks for.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/v1/models")
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestTLSAndMTLS: the gateway terminates TLS; with client_auth require a
// client without a certificate, or with one from another CA, is refused
// at the handshake and one with a certificate from client_ca_file is
// served; the server certificate is reloaded without a restart.
func TestTLSAndMTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	certFile, keyFile, caFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "clients.crt")
	c, k := serverCA.issue(t, "gateway", 100, true)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, clientCA.pem)
	srv, addr := serveTLS(t, fmt.Sprintf("{cert_file: %s, key_file: %s, client_ca_file: %s, client_auth: require, reload_interval: 20ms}", certFile, keyFile, caFile))
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	pair := func(ca *testCA, cn string) []tls.Certificate {
		cp, kp := ca.issue(t, cn, 7, false)
		cert, err := tls.X509KeyPair(cp, kp)
		require.NoError(t, err)
		return []tls.Certificate{cert}
	}

	_, _, err := tlsGet(roots, nil, addr)
	require.Error(t, err, "require: a client without a certificate is refused")
	_, _, err = tlsGet(roots, pair(otherCA, "mallory"), addr)
	require.Error(t, err, "require: a certificate from another CA is refused")
	code, serial, err := tlsGet(roots, pair(clientCA, "alice"), addr)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, int64(100), serial)
	// Plain HTTP on the TLS port gets no answer.
	res, err := http.Get("http://" + addr + "/v1/models")
	if err == nil {
		res.Body.Close()
		assert.NotEqual(t, 200, res.StatusCode, "plain HTTP is not served")
	}

	// Reload: a new certificate replaces the old on new connections.
	c2, k2 := serverCA.issue(t, "gateway", 200, true)
	writeFile(t, keyFile, k2)
	writeFile(t, certFile, c2)
	require.Eventually(t, func() bool {
		_, serial, err := tlsGet(roots, pair(clientCA, "alice"), addr)
		return err == nil && serial == 200
	}, 10*time.Second, 20*time.Millisecond, "the new certificate is served without a restart")
	// A broken file keeps the current certificate (and ReloadTLS says why).
	writeFile(t, certFile, []byte("not a certificate"))
	require.Error(t, srv.ReloadTLS())
	_, serial, err = tlsGet(roots, pair(clientCA, "alice"), addr)
	require.NoError(t, err)
	assert.Equal(t, int64(200), serial)
}

// TestTLSClientAuthRequest: with client_auth request a client without a
// certificate is served, one with a certificate of an unknown CA is not.
func TestTLSClientAuthRequest(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	certFile, keyFile, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.crt")
	c, k := serverCA.issue(t, "gateway", 1, true)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, clientCA.pem)
	_, addr := serveTLS(t, fmt.Sprintf("{cert_file: %s, key_file: %s, client_ca_file: %s, client_auth: request}", certFile, keyFile, caFile))
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	code, _, err := tlsGet(roots, nil, addr)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	cp, kp := otherCA.issue(t, "mallory", 9, false)
	bad, err := tls.X509KeyPair(cp, kp)
	require.NoError(t, err)
	_, _, err = tlsGet(roots, []tls.Certificate{bad}, addr)
	assert.Error(t, err)
}

// TestTLSConfigErrors: the tls block is validated up front.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	c, k := ca.issue(t, "gw", 1, true)
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeFile(t, cert, c)
	writeFile(t, key, k)
	base := "providers: [{name: sim, type: sim}]\nmodels: [{id: s, provider: sim, sim: {}}]\nlog: {dir: \"\"}\n"
	for _, tc := range []struct{ tls, want string }{
		{fmt.Sprintf("{cert_file: %s}", cert), "tls.cert_file and tls.key_file"},
		{fmt.Sprintf("{cert_file: %s, key_file: %s, client_auth: always}", cert, key), `tls.client_auth: "always"`},
		{fmt.Sprintf("{cert_file: %s, key_file: %s, client_auth: require}", cert, key), "tls.client_ca_file: required"},
		{fmt.Sprintf("{cert_file: %s, key_file: %s}", key, cert), "tls.cert_file"},
		{fmt.Sprintf("{cert_file: %s, key_file: %s, client_auth: request, client_ca_file: %s}", cert, key, key), "no PEM certificate"},
		{fmt.Sprintf("{cert_file: %s, key_file: %s, min_version: '1.0'}", cert, key), "tls.min_version"},
	} {
		_, err := ParseConfig([]byte("tls: " + tc.tls + "\n" + base))
		require.Error(t, err, tc.tls)
		assert.Contains(t, err.Error(), tc.want, tc.tls)
	}
}

// serverCert writes a server certificate for 127.0.0.1 and its key, and
// returns them with a constructor of HTTP/2-capable clients that trust it.
func serverCert(t *testing.T) (certFile, keyFile string, client func() *http.Client) {
	dir := t.TempDir()
	ca := newTestCA(t, "server-ca")
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	c, k := ca.issue(t, "gateway", 7, true)
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return certFile, keyFile, func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	}
}

// TestTLSHTTP2: over TLS the gateway speaks HTTP/2 (ALPN) — requests and
// streams multiplexed on one connection, one place at max_connections —
// and HTTP/1.1 to clients that ask for it (WebSocket included); when a
// connection waits for a place, an HTTP/2 connection's place is freed (the
// crowded answer's "Connection: close" becomes a GOAWAY, and Go's HTTP/2
// server closes the connection a second after its last stream; the idle
// reclaim takes it as soon); http2: false offers HTTP/1.1 only.
func TestTLSHTTP2(t *testing.T) {
	certFile, keyFile, h2Client := serverCert(t)
	post := func(c *http.Client, addr string) (*http.Response, error) {
		res, err := c.Post("https://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(msgBody, "s", `,"stream":true`)))
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return res, err
	}

	srv, addr := serveTLS(t, fmt.Sprintf("{cert_file: %s, key_file: %s}\nserver: {max_connections: 1}", certFile, keyFile))
	a := h2Client()
	res, err := post(a, addr) // the connection, before streams share it
	require.NoError(t, err)
	assert.Equal(t, 2, res.ProtoMajor, "HTTP/2")
	var wg sync.WaitGroup
	for range 4 { // concurrent streams on a's one connection
		wg.Go(func() {
			res, err := post(a, addr)
			if assert.NoError(t, err) {
				assert.Equal(t, 200, res.StatusCode)
				assert.Equal(t, 2, res.ProtoMajor, "HTTP/2")
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, srv.connLimiter.Load().Open(), "four streams, one connection")

	// A WebSocket upgrade goes over HTTP/1.1 (Go's client asks for it in
	// the handshake, as browsers do), from an HTTP/2-capable client too.
	h1 := h2Client()
	b := make(chan error, 1)
	go func() {
		ws, _, err := websocket.Dial(context.Background(), "wss://"+addr+"/v1/ws", &websocket.DialOptions{HTTPClient: h1})
		if err == nil {
			ws.Close(websocket.StatusNormalClosure, "")
		}
		b <- err
	}()
	time.Sleep(100 * time.Millisecond) // b's connection is accepted and waits for a's place
	res, err = post(a, addr)
	require.NoError(t, err)
	assert.Equal(t, 2, res.ProtoMajor)
	select {
	case err := <-b:
		require.NoError(t, err, "a's place went to b's WebSocket")
	case <-time.After(5 * time.Second):
		t.Fatal("a's HTTP/2 connection kept its place while b waited")
	}

	_, addr = serveTLS(t, fmt.Sprintf("{cert_file: %s, key_file: %s, http2: false}", certFile, keyFile))
	res, err = post(h2Client(), addr)
	require.NoError(t, err)
	assert.Equal(t, 1, res.ProtoMajor, "http2: false")
}

// TestTLSHTTP2SlowBody: an HTTP/2 stream whose body stalls is cut at
// server.read_timeout, as an HTTP/1.1 request is (408), and the connection
// keeps serving its other streams.
func TestTLSHTTP2SlowBody(t *testing.T) {
	certFile, keyFile, h2Client := serverCert(t)
	_, addr := serveTLS(t, fmt.Sprintf("{cert_file: %s, key_file: %s}\nserver: {read_timeout: 300ms}", certFile, keyFile))
	client := h2Client()

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = io.WriteString(pw, `{"model":`) }() // and nothing more
	start := time.Now()
	res, err := client.Post("https://"+addr+"/v1/chat/completions", "application/json", pr)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	assert.Equal(t, 2, res.ProtoMajor)
	assert.Equal(t, http.StatusRequestTimeout, res.StatusCode)
	assert.Less(t, time.Since(start), 3*time.Second)

	res, err = client.Post("https://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(msgBody, "s", "")))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode, "the connection still serves")
}
