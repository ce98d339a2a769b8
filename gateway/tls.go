package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TLSConfig is the `tls:` block: TLS termination on the gateway's
// listener, optionally with client certificates (mTLS).
//
//	tls:
//	  cert_file: /etc/routelab/tls/server.crt   # PEM chain, leaf first
//	  key_file: /etc/routelab/tls/server.key
//	  client_ca_file: /etc/routelab/tls/ca.crt  # PEM CAs client certificates must chain to
//	  client_auth: require                      # none (default) | request | require
//	  min_version: "1.2"                        # "1.2" (default) or "1.3"
//	  reload_interval: 5s                       # how often the files' mtimes are checked (default 5s)
//	  http2: true                               # offer HTTP/2 (ALPN "h2") beside HTTP/1.1 (default true)
//
// The certificate, key and client CAs are reloaded without a restart when
// a file's modification time or size changes (checked every
// reload_interval) and on SIGHUP; new handshakes use the new files,
// established connections keep theirs. Files that fail to load keep the
// previous ones in service and are logged. client_auth "request" verifies
// a certificate when the client sends one; "require" refuses a handshake
// without a valid one.
type TLSConfig struct {
	CertFile       string        `yaml:"cert_file"`
	KeyFile        string        `yaml:"key_file"`
	ClientCAFile   string        `yaml:"client_ca_file"`
	ClientAuth     string        `yaml:"client_auth"`
	MinVersion     string        `yaml:"min_version"`
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// HTTP2 offers HTTP/2 in the handshake (ALPN "h2", then "http/1.1"):
	// a client multiplexes its requests and streams on one connection,
	// which is one place at server.max_connections. Default true; false
	// offers HTTP/1.1 only.
	HTTP2 *bool `yaml:"http2"`
}

// nextProtos is what the handshake offers (ALPN).
func (t *TLSConfig) nextProtos() []string {
	if t.HTTP2 != nil && !*t.HTTP2 {
		return []string{"http/1.1"}
	}
	return []string{"h2", "http/1.1"}
}

func (t *TLSConfig) clientAuth() tls.ClientAuthType {
	switch t.ClientAuth {
	case "request":
		return tls.VerifyClientCertIfGiven
	case "require":
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

func (t *TLSConfig) minVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func (t *TLSConfig) reloadInterval() time.Duration {
	if t.ReloadInterval <= 0 {
		return 5 * time.Second
	}
	return t.ReloadInterval
}

// validateTLS checks the tls block and that its files load.
func (c *Config) validateTLS() error {
	t := c.TLS
	if t == nil {
		return nil
	}
	switch {
	case t.CertFile == "" || t.KeyFile == "":
		return fmt.Errorf("tls.cert_file and tls.key_file: both required")
	case t.ClientAuth != "" && t.ClientAuth != "none" && t.ClientAuth != "request" && t.ClientAuth != "require":
		return fmt.Errorf("tls.client_auth: %q is not none, request or require", t.ClientAuth)
	case (t.ClientAuth == "request" || t.ClientAuth == "require") && t.ClientCAFile == "":
		return fmt.Errorf("tls.client_ca_file: required with client_auth %s (the CAs client certificates must chain to)", t.ClientAuth)
	case t.MinVersion != "" && t.MinVersion != "1.2" && t.MinVersion != "1.3":
		return fmt.Errorf("tls.min_version: %q is not 1.2 or 1.3", t.MinVersion)
	case t.ReloadInterval < 0:
		return fmt.Errorf("tls.reload_interval: %v must be >= 0", t.ReloadInterval)
	}
	if _, err := loadTLSFiles(t); err != nil {
		return err
	}
	return nil
}

// tlsFiles is one loaded generation of the TLS files.
type tlsFiles struct {
	cfg   *tls.Config
	stamp [3]fileStamp
}

type fileStamp struct {
	mtime time.Time
	size  int64
}

func stampOf(path string) fileStamp {
	if path == "" {
		return fileStamp{}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{mtime: st.ModTime(), size: st.Size()}
}

func (t *TLSConfig) stamps() [3]fileStamp {
	return [3]fileStamp{stampOf(t.CertFile), stampOf(t.KeyFile), stampOf(t.ClientCAFile)}
}

// loadTLSFiles reads the certificate, key and client CAs into a
// tls.Config for new handshakes.
func loadTLSFiles(t *TLSConfig) (*tlsFiles, error) {
	stamp := t.stamps()
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s / tls.key_file %s: %w", t.CertFile, t.KeyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: t.minVersion(), ClientAuth: t.clientAuth(), NextProtos: t.nextProtos()}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file %s: no PEM certificate in it", t.ClientCAFile)
		}
		cfg.ClientCAs = pool
	}
	return &tlsFiles{cfg: cfg, stamp: stamp}, nil
}

// tlsReloader serves the current generation of the TLS files to new
// handshakes (tls.Config.GetConfigForClient) and swaps in a new one when
// the files change.
type tlsReloader struct {
	cfg     TLSConfig
	log     *slog.Logger
	cur     atomic.Pointer[tlsFiles]
	mu      sync.Mutex // serialises reloads
	reloads atomic.Int64
}

func newTLSReloader(c *TLSConfig, log *slog.Logger) (*tlsReloader, error) {
	f, err := loadTLSFiles(c)
	if err != nil {
		return nil, err
	}
	r := &tlsReloader{cfg: *c, log: log}
	r.cur.Store(f)
	return r, nil
}

// config is the listener's tls.Config: every handshake gets the current
// generation.
func (r *tlsReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion: r.cfg.minVersion(),
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().cfg, nil
		},
	}
}

// reload loads the files again when force is set or their stamps changed;
// a failed load keeps the current generation and is returned.
func (r *tlsReloader) reload(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !force && r.cfg.stamps() == r.cur.Load().stamp {
		return nil
	}
	f, err := loadTLSFiles(&r.cfg)
	if err != nil {
		r.log.Warn("tls: files changed but do not load; keeping the previous certificate", "err", err)
		return err
	}
	r.cur.Store(f)
	r.reloads.Add(1)
	r.log.Info("tls: certificate reloaded", "cert_file", r.cfg.CertFile)
	return nil
}

// watch reloads on a change of the files' stamps (every reload_interval)
// and on SIGHUP until ctx ends.
func (r *tlsReloader) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(r.cfg.reloadInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = r.reload(true)
		case <-t.C:
			_ = r.reload(false)
		}
	}
}

// wrapTLS terminates TLS on ln when tls: is configured, and starts the
// reloader's watch until ctx ends.
func (s *Server) wrapTLS(ctx context.Context, ln net.Listener) (net.Listener, error) {
	if s.cfg.TLS == nil {
		return ln, nil
	}
	if s.tlsr == nil {
		r, err := newTLSReloader(s.cfg.TLS, s.log)
		if err != nil {
			return nil, err
		}
		s.tlsr = r
	}
	go s.tlsr.watch(ctx)
	return tls.NewListener(ln, s.tlsr.config()), nil
}

// ReloadTLS reloads the TLS certificate, key and client CAs now (what
// SIGHUP does); an error leaves the previous ones in service.
func (s *Server) ReloadTLS() error {
	if s.tlsr == nil {
		return errors.New("tls: not configured")
	}
	return s.tlsr.reload(true)
}
