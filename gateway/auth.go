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
	key    string // key name, "jwt:SUBJECT"; "" = anonymous (development mode without credentials)
	tenant string
	lim    *rate.Limiter
	scopes scopeSet
	// owner, when set, is what the request ids this caller gets are bound
	// to (reqid.go) instead of the bearer token: a JWT's subject, which
	// outlives the token.
	owner string
}

type keyring struct {
	keys  map[[32]byte]*caller
	anon  *caller
	admin *[32]byte
	// jwt, optional, verifies JWT bearer tokens; jwtLims holds the
	// per-subject buckets (rate_limits.per_key).
	jwt     *jwtVerifier
	jwtLims *tenantLimits
}

func newKeyring(c *Config) *keyring {
	kr := &keyring{keys: map[[32]byte]*caller{}}
	for _, k := range c.Auth.Keys {
		var h [32]byte
		b, _ := hex.DecodeString(strings.ToLower(k.SHA256)) // validated
		copy(h[:], b)
		sc, _ := parseScopes(k.Scopes) // validated
		cl := &caller{key: k.Name, tenant: k.Tenant, scopes: sc}
		if l := k.Limit; l != nil {
			cl.lim = newLimiter(l)
		} else if l := c.RateLimits.PerKey; l != nil {
			cl.lim = newLimiter(l)
		}
		kr.keys[h] = cl
	}
	if len(kr.keys) == 0 && c.Auth.JWT == nil {
		kr.anon = &caller{scopes: scopeAll}
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

// authenticate returns the caller of a request: an API key, a verified
// JWT (auth.jwt), or the anonymous caller when no credential is
// configured. It judges the credential, not its scopes.
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
	if c := k.keys[sha256.Sum256([]byte(tok))]; c != nil {
		return c, nil
	}
	if k.jwt != nil && looksLikeJWT(tok) {
		id, err := k.jwt.verify(tok)
		if err != nil {
			return nil, apiErr(http.StatusUnauthorized, typeAuth, "invalid_token", "invalid token: "+clip(err.Error()))
		}
		name := "jwt:" + id.subject
		return &caller{key: name, tenant: id.tenant, scopes: id.scopes, lim: k.jwtLims.limiter(id.subject), owner: name}, nil
	}
	return nil, errBadKey
}

// owner is what r's request ids are bound to: the caller's owner, else
// the bearer token.
func owner(cl *caller, r *http.Request) string {
	return ownerOf(cl, bearer(r))
}

// ownerOf is what the request ids of a caller presenting the bearer
// credential cred are bound to.
func ownerOf(cl *caller, cred string) string {
	if cl != nil && cl.owner != "" {
		return cl.owner
	}
	return cred
}

// adminAccess is the outcome of checking an admin request's credential.
type adminAccess int

const (
	adminGranted adminAccess = iota
	adminNoToken             // no or unknown credential: 401
	adminUserKey             // a valid /v1 API key, not the admin token: 403
)

// adminCheck checks r's credential for an admin route needing scope need
// and names who presented it for the audit log: "admin:" plus the first 8
// hex digits of the token's hash, "key:NAME" for an API key, "jwt:SUBJECT"
// for a verified JWT, "anonymous" for none, or "unknown:" plus a hash
// prefix. The admin token holds admin-read and admin-write; keys and JWTs
// their scopes (adminUserKey, a 403, when they lack need). Without any
// credential configured (development mode only: Validate refuses keys
// without an admin token) everyone is granted.
func (k *keyring) adminCheck(r *http.Request, need scopeSet) (adminAccess, string) {
	tok := bearer(r)
	h := sha256.Sum256([]byte(tok))
	if k.admin == nil && k.anon != nil {
		if tok == "" {
			return adminGranted, "anonymous"
		}
		return adminGranted, "unknown:" + hex.EncodeToString(h[:4])
	}
	switch {
	case k.admin != nil && subtle.ConstantTimeCompare(h[:], k.admin[:]) == 1:
		return adminGranted, "admin:" + hex.EncodeToString(h[:4])
	case tok == "":
		return adminNoToken, "anonymous"
	}
	if c := k.keys[h]; c != nil {
		if c.scopes&need == need {
			return adminGranted, "key:" + c.key
		}
		return adminUserKey, "key:" + c.key
	}
	if k.jwt != nil && looksLikeJWT(tok) {
		if id, err := k.jwt.verify(tok); err == nil {
			if id.scopes&need == need {
				return adminGranted, "jwt:" + id.subject
			}
			return adminUserKey, "jwt:" + id.subject
		}
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
