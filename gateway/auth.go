package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// caller is who sent a request, after authentication.
type caller struct {
	key    string // key name; "" = anonymous (development mode without keys)
	tenant string
	lim    *rate.Limiter
}

type keyring struct {
	keys  map[[32]byte]*caller
	anon  *caller
	admin *[32]byte
}

func newKeyring(c *Config) *keyring {
	kr := &keyring{keys: map[[32]byte]*caller{}}
	for _, k := range c.Auth.Keys {
		var h [32]byte
		b, _ := hex.DecodeString(strings.ToLower(k.SHA256)) // validated
		copy(h[:], b)
		cl := &caller{key: k.Name, tenant: k.Tenant}
		if l := k.Limit; l != nil {
			cl.lim = newLimiter(l)
		} else if l := c.RateLimits.PerKey; l != nil {
			cl.lim = newLimiter(l)
		}
		kr.keys[h] = cl
	}
	if len(kr.keys) == 0 {
		kr.anon = &caller{}
		if l := c.RateLimits.PerKey; l != nil {
			kr.anon.lim = newLimiter(l)
		}
	}
	if t := c.Auth.AdminTokenSHA256; t != "" {
		var h [32]byte
		b, _ := hex.DecodeString(strings.ToLower(t))
		copy(h[:], b)
		kr.admin = &h
	}
	return kr
}

func newLimiter(l *LimitConfig) *rate.Limiter {
	burst := l.Burst
	if burst == 0 {
		burst = max(1, int(l.RPS))
	}
	return rate.NewLimiter(rate.Limit(l.RPS), burst)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

var (
	errMissingKey = apiErr(http.StatusUnauthorized, typeAuth, "missing_api_key", "missing API key: send Authorization: Bearer <key>")
	errBadKey     = apiErr(http.StatusUnauthorized, typeAuth, "invalid_api_key", "invalid API key")
)

// authenticate returns the caller of an /v1 request.
func (k *keyring) authenticate(r *http.Request) (*caller, *APIError) {
	return k.authenticateToken(bearer(r))
}

// authenticateToken returns the caller presenting bearer token tok, on
// any transport.
func (k *keyring) authenticateToken(tok string) (*caller, *APIError) {
	if k.anon != nil {
		return k.anon, nil
	}
	if tok == "" {
		return nil, errMissingKey
	}
	c := k.keys[sha256.Sum256([]byte(tok))]
	if c == nil {
		return nil, errBadKey
	}
	return c, nil
}

// adminAccess is the outcome of checking an admin request's credential.
type adminAccess int

const (
	adminGranted adminAccess = iota
	adminNoToken             // no or unknown credential: 401
	adminUserKey             // a valid /v1 API key, not the admin token: 403
)

// adminCheck checks r's credential against the admin token and names who
// presented it for the audit log: "admin:" plus the first 8 hex digits of
// the token's hash, "key:NAME" for an API key, "anonymous" for none, or
// "unknown:" plus a hash prefix. Without an admin token (development mode
// without keys only: Validate refuses keys without one) everyone is
// granted.
func (k *keyring) adminCheck(r *http.Request) (adminAccess, string) {
	tok := bearer(r)
	h := sha256.Sum256([]byte(tok))
	if k.admin == nil {
		if tok == "" {
			return adminGranted, "anonymous"
		}
		return adminGranted, "unknown:" + hex.EncodeToString(h[:4])
	}
	switch {
	case subtle.ConstantTimeCompare(h[:], k.admin[:]) == 1:
		return adminGranted, "admin:" + hex.EncodeToString(h[:4])
	case tok == "":
		return adminNoToken, "anonymous"
	}
	if c := k.keys[h]; c != nil {
		return adminUserKey, "key:" + c.key
	}
	return adminNoToken, "unknown:" + hex.EncodeToString(h[:4])
}

// tenantLimits holds one token bucket per tenant: configured tenants get
// theirs, others share the per_tenant default, created on first use up to
// maxDynamicTenants (beyond which unknown tenants share one bucket, so a
// caller inventing tenant names cannot grow memory without bound).
type tenantLimits struct {
	fixed map[string]*rate.Limiter
	def   *LimitConfig
	mu    sync.RWMutex
	dyn   map[string]*rate.Limiter
	other *rate.Limiter
}

const maxDynamicTenants = 10_000

func newTenantLimits(c *Config) *tenantLimits {
	t := &tenantLimits{fixed: map[string]*rate.Limiter{}, def: c.RateLimits.PerTenant, dyn: map[string]*rate.Limiter{}}
	for _, tc := range c.Tenants {
		if tc.Limit != nil {
			t.fixed[tc.Name] = newLimiter(tc.Limit)
		}
	}
	if t.def != nil {
		t.other = newLimiter(t.def)
	}
	return t
}

func (t *tenantLimits) limiter(tenant string) *rate.Limiter {
	if l := t.fixed[tenant]; l != nil {
		return l
	}
	if t.def == nil {
		return nil
	}
	t.mu.RLock()
	l := t.dyn[tenant]
	t.mu.RUnlock()
	if l != nil {
		return l
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if l = t.dyn[tenant]; l != nil {
		return l
	}
	if len(t.dyn) >= maxDynamicTenants {
		return t.other
	}
	l = newLimiter(t.def)
	t.dyn[tenant] = l
	return l
}

// identify names r's credential for the access log without judging it:
// the key name and its tenant, "admin" for the admin token, "anonymous"
// for none, "unknown" otherwise.
func (k *keyring) identify(r *http.Request) (key, tenant string) {
	return k.identifyToken(bearer(r))
}

// identifyToken is identify for a bearer token from any transport.
func (k *keyring) identifyToken(tok string) (key, tenant string) {
	if tok == "" {
		return "anonymous", ""
	}
	h := sha256.Sum256([]byte(tok))
	if c := k.keys[h]; c != nil {
		return c.key, c.tenant
	}
	if k.admin != nil && subtle.ConstantTimeCompare(h[:], k.admin[:]) == 1 {
		return "admin", ""
	}
	return "unknown", ""
}
