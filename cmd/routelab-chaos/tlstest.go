package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// certAuthority issues certificates for the TLS checks.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(cn string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, err
}

func (ca *certAuthority) issue(cn string, serial int64, server bool) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tpl.ExtKeyUsage, tpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), err
}

// tlsProbe makes one request on a new connection; it returns the status
// and the serial of the server's certificate.
func tlsProbe(url string, roots *x509.CertPool, client *tls.Certificate) (int, int64, error) {
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+keyBob)
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
}

// testTLS: mTLS on the real binary: a client without a certificate is
// refused under client_auth require; a new certificate is served after
// SIGHUP, without a restart.
func testTLS(e *env) []row {
	const name = "tls: mTLS (client_auth require) and reload on SIGHUP"
	const want = "no client cert: refused; client cert: 200; new cert after SIGHUP, same process"
	serverCA, err := newCA("chaos-server-ca")
	if err != nil {
		return failed(name, want, err)
	}
	clientCA, err := newCA("chaos-client-ca")
	if err != nil {
		return failed(name, want, err)
	}
	certFile, keyFile, caFile := filepath.Join(e.dir, "server.crt"), filepath.Join(e.dir, "server.key"), filepath.Join(e.dir, "clients.crt")
	write := func(serial int64) error {
		c, k, err := serverCA.issue("gateway", serial, true)
		if err == nil {
			err = os.WriteFile(keyFile, k, 0o600)
		}
		if err == nil {
			err = os.WriteFile(certFile, c, 0o600)
		}
		return err
	}
	if err := write(100); err != nil {
		return failed(name, want, err)
	}
	if err := os.WriteFile(caFile, clientCA.pem, 0o600); err != nil {
		return failed(name, want, err)
	}
	cp, kp, err := clientCA.issue("alice", 7, false)
	if err != nil {
		return failed(name, want, err)
	}
	cc, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		return failed(name, want, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return failed(name, want, err)
	}
	cfg := prodConfig(addr, e.dir, e.mock.addr)
	// reload_interval long: only SIGHUP can make the reload within the check.
	cfg["tls"] = map[string]any{"cert_file": certFile, "key_file": keyFile, "client_ca_file": caFile, "client_auth": "require", "reload_interval": "1h"}
	path, err := writeConfig(e.dir, "tls.yaml", cfg)
	if err != nil {
		return failed(name, want, err)
	}
	g, err := startGW(e.bin, e.dir, "", "--config", path)
	if err != nil {
		return failed(name, want, err)
	}
	defer g.kill()
	url := "https://" + addr
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	code, serial := 0, int64(0)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, serial, err = tlsProbe(url, roots, &cc); err == nil {
			break
		}
	}
	if err != nil {
		return failed(name, want, fmt.Errorf("gateway not ready over mTLS: %w; %s", err, tail(g.stderr.String())))
	}
	_, _, noCertErr := tlsProbe(url, roots, nil)
	if err := write(200); err != nil {
		return failed(name, want, err)
	}
	_ = g.cmd.Process.Signal(syscall.SIGHUP)
	serial2 := int64(0)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && serial2 != 200; time.Sleep(50 * time.Millisecond) {
		_, serial2, _ = tlsProbe(url, roots, &cc)
	}
	alive := true
	select {
	case err := <-g.done:
		g.done <- err
		alive = false
	default:
	}
	return []row{{test: name, expected: want,
		observed: fmt.Sprintf("no client cert: %v; client cert: %d (serial %d); after SIGHUP serial %d, process alive %v", noCertErr != nil, code, serial, serial2, alive),
		pass:     noCertErr != nil && code == 200 && serial == 100 && serial2 == 200 && alive}}
}
