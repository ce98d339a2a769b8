package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Credentials of the production-like configuration (only their SHA-256
// digests are in the config).
const (
	keyAlice  = "sk-chaos-alice"  // tenant ta, rate limit 20/s burst 20
	keyBob    = "sk-chaos-bob"    // tenant tb
	keyNoTen  = "sk-chaos-noten"  // no tenant: its tenant is its name
	keyBulk   = "sk-chaos-bulk"   // no rate limit (load tests)
	adminTok  = "adm-chaos-token" // admin-read + admin-write
	tenantEnv = "ROUTELAB_TENANT_SALT"
)

// mock is the switchable OpenAI-compatible upstream: /u1, /u2, /u3 and
// /bulk, each with its own mode.
type mock struct {
	srv   *http.Server
	addr  string
	modes sync.Map // upstream name → mode string
	calls atomic.Int64
}

// Modes: ok (fast answer; streams 5 chunks 20 ms apart), slow (streams a
// chunk every 100 ms for 20 s), bulk (streams 1 KiB chunks as fast as the
// gateway takes them, up to 32 MiB), 429 (Retry-After: 7), leak (500 with
// an internal URL and detail in the body), eof (connection closed without
// an answer).
func startMock() (*mock, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &mock{addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{u}/v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	mux.HandleFunc("POST /{u}/v1/chat/completions", m.chat)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

func (m *mock) set(upstream, mode string) { m.modes.Store(upstream, mode) }

func (m *mock) mode(u string) string {
	if v, ok := m.modes.Load(u); ok {
		return v.(string)
	}
	return "ok"
}

func (m *mock) chat(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	stream := bytes.Contains(body, []byte(`"stream":true`))
	model := "m"
	switch m.mode(r.PathValue("u")) {
	case "429":
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"quota of org-internal-42 exceeded","type":"rate_limit_error"}}`)
		return
	case "leak":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"message":"backend http://10.1.2.3:9001/internal/shard-7 failed: db password=hunter2"}}`)
		return
	case "eof":
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case "slow":
		if stream {
			sse(w, r, model, 200, 100*time.Millisecond, 0)
			return
		}
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
			return
		}
	case "bulk":
		if stream {
			sse(w, r, model, 32<<10, 0, 1024)
			return
		}
	}
	if stream {
		sse(w, r, model, 5, 20*time.Millisecond, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1700000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, model)
}

// sse streams n content chunks (pad bytes each), every gap.
func sse(w http.ResponseWriter, r *http.Request, model string, n int, gap time.Duration, pad int) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	content := strings.Repeat("x", max(pad, 1))
	for i := 0; i < n; i++ {
		if _, err := fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", model, content); err != nil {
			return
		}
		fl.Flush()
		if gap > 0 {
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
		} else if r.Context().Err() != nil {
			return
		}
	}
	fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", model)
	fl.Flush()
}

// sha is the SHA-256 hex digest the config stores credentials as.
func sha(s string) string { return sha256hex(s) }

// prodConfig is the production-like configuration: three openai-type
// upstreams on the mock (u1, u2, u3 → models m1, m2, m3 in one fallback
// group), a bulk upstream, API keys with rate limits, an admin token,
// masking, access and audit logs, the decision log under dir.
func prodConfig(listen, dir, mockAddr string) map[string]any {
	up := func(name string) map[string]any {
		return map[string]any{"name": name, "type": "openai", "base_url": "http://" + mockAddr + "/" + name + "/v1",
			"max_concurrency": 64, "timeout": "30s", "queue_timeout": "10s"}
	}
	bulk := up("bulk")
	bulk["max_concurrency"] = 8
	return map[string]any{
		"mode":    "production",
		"listen":  listen,
		"aliases": []string{"auto"},
		"policy":  map[string]any{"name": "thompson", "params": map[string]string{"seed": "1", "floor": "0.1"}},
		"auth": map[string]any{
			"keys": []map[string]any{
				{"name": "alice", "tenant": "ta", "sha256": sha(keyAlice), "rate_limit": map[string]any{"rps": 20, "burst": 20}},
				{"name": "bob", "tenant": "tb", "sha256": sha(keyBob)},
				{"name": "noten", "sha256": sha(keyNoTen), "rate_limit": map[string]any{"rps": 0.01, "burst": 5}},
				{"name": "bulk", "tenant": "tbulk", "sha256": sha(keyBulk), "rate_limit": map[string]any{"rps": 100000, "burst": 100000}},
			},
			"admin_token_sha256": sha(adminTok),
		},
		"rate_limits": map[string]any{"per_tenant": map[string]any{"rps": 0.01, "burst": 1}},
		"tenants": []map[string]any{
			{"name": "ta", "rate_limit": map[string]any{"rps": 1000, "burst": 1000}},
			{"name": "tb", "rate_limit": map[string]any{"rps": 1000, "burst": 1000}},
			{"name": "tbulk", "rate_limit": map[string]any{"rps": 100000, "burst": 100000}},
		},
		"providers": []map[string]any{up("u1"), up("u2"), up("u3"), bulk},
		"models": []map[string]any{
			{"id": "m1", "provider": "u1", "price_in": 0.0005, "price_out": 0.0015, "quality": 0.7},
			{"id": "m2", "provider": "u2", "price_in": 0.001, "price_out": 0.002, "quality": 0.75},
			{"id": "m3", "provider": "u3", "price_in": 0.003, "price_out": 0.015, "quality": 0.85},
			{"id": "bulk", "provider": "bulk"},
		},
		"tenants_models": nil,
		"fallbacks":      []map[string]any{{"name": "main", "models": []string{"m1", "m2", "m3"}}},
		"retries":        map[string]any{"max": 1},
		"health":         map[string]any{"interval": "30s"},
		"log":            map[string]any{"dir": filepath.Join(dir, "decisions")},
		"access_log":     map[string]any{"enabled": true, "path": filepath.Join(dir, "access.log")},
		"audit_log":      map[string]any{"path": filepath.Join(dir, "audit.log")},
		"privacy":        map[string]any{"tenant_salt_env": tenantEnv},
	}
}

// gw is one gateway process.
type gw struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	stderr *syncBuf
	done   chan error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address nothing listens on (now).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeConfig writes cfg as YAML to dir/name.
func writeConfig(dir, name string, cfg map[string]any) (string, error) {
	delete(cfg, "tenants_models")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, b, 0o600)
}

// startGW starts `routelab serve` with args in dir and waits until it
// answers /healthz (or exits).
func startGW(bin, dir, url string, args ...string) (*gw, error) {
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), tenantEnv+"=chaos-salt-0123456789abcdef")
	g := &gw{cmd: cmd, url: url, dir: dir, stderr: &syncBuf{}, done: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = g.stderr, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { g.done <- cmd.Wait() }()
	if url == "" {
		return g, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-g.done:
			g.done <- err
			return nil, fmt.Errorf("gateway exited at start-up (%v): %s", err, tail(g.stderr.String()))
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url+"/healthz", nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return g, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.kill()
	return nil, fmt.Errorf("gateway not ready within 30s: %s", tail(g.stderr.String()))
}

func tail(s string) string {
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return strings.TrimSpace(s)
}

// stop sends SIGTERM and waits for the drain (at most 30 s).
func (g *gw) stop() error {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		return err
	case <-time.After(30 * time.Second):
		g.kill()
		return fmt.Errorf("gateway did not stop within 30s")
	}
}

// kill sends SIGKILL and reaps the process.
func (g *gw) kill() {
	_ = g.cmd.Process.Kill()
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
	}
}

// procKB reads a VmXXX field (kB) of the gateway's /proc status.
func (g *gw) procKB(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// call makes one request and returns status, headers and body (up to
// 1 MiB).
func call(ctx context.Context, client *http.Client, method, url, cred, body string, hdr ...string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, res.Header, string(b), err
}

func chatBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"hello"}]}`, model, stream)
}
