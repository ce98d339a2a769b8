package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWTConfig is `auth.jwt:`: JWT bearer tokens signed by an identity
// provider whose public keys are in a JWKS file.
//
//	auth:
//	  jwt:
//	    jwks_file: /etc/routelab/jwks.json   # {"keys":[{kty,kid,alg,n,e | crv,x,y}]}
//	    issuer: https://idp.example.com      # required: the iss claim
//	    audience: routelab                   # required: one of the aud claim
//	    tenant_claim: tenant                 # default "tenant"
//	    scopes_claim: scope                  # default "scope" (string or array)
//	    algorithms: [RS256, ES256]           # default both
//	    leeway: 30s                          # clock skew allowed on exp/nbf/iat
//
// A token must carry exp, the configured iss and aud, a sub, and the
// tenant claim; its scopes come from the scopes claim (authz.go). The
// JWKS file is re-read when its modification time or size changes
// (checked at most once a second, and on an unknown kid); a file that
// fails to parse keeps the previous keys and is logged.
type JWTConfig struct {
	JWKSFile    string        `yaml:"jwks_file"`
	Issuer      string        `yaml:"issuer"`
	Audience    string        `yaml:"audience"`
	TenantClaim string        `yaml:"tenant_claim"`
	ScopesClaim string        `yaml:"scopes_claim"`
	Algorithms  []string      `yaml:"algorithms"`
	Leeway      time.Duration `yaml:"leeway"`
}

func (j *JWTConfig) tenantClaim() string {
	if j.TenantClaim == "" {
		return "tenant"
	}
	return j.TenantClaim
}

func (j *JWTConfig) scopesClaim() string {
	if j.ScopesClaim == "" {
		return "scope"
	}
	return j.ScopesClaim
}

func (j *JWTConfig) algorithms() []string {
	if len(j.Algorithms) == 0 {
		return []string{"RS256", "ES256"}
	}
	return j.Algorithms
}

// validateJWT checks auth.jwt, including that the JWKS file loads.
func (c *Config) validateJWT() error {
	j := c.Auth.JWT
	if j == nil {
		return nil
	}
	switch {
	case j.JWKSFile == "":
		return fmt.Errorf("auth.jwt.jwks_file: required")
	case j.Issuer == "":
		return fmt.Errorf("auth.jwt.issuer: required (tokens of any issuer would be accepted)")
	case j.Audience == "":
		return fmt.Errorf("auth.jwt.audience: required (tokens meant for other services would be accepted)")
	case j.Leeway < 0:
		return fmt.Errorf("auth.jwt.leeway: %v must be >= 0", j.Leeway)
	}
	for i, a := range j.algorithms() {
		if a != "RS256" && a != "ES256" {
			return fmt.Errorf("auth.jwt.algorithms[%d]: %q is not RS256 or ES256", i, a)
		}
	}
	if _, err := loadJWKS(j.JWKSFile); err != nil {
		return fmt.Errorf("auth.jwt.jwks_file: %w", err)
	}
	return nil
}

// jwk is one key of a JWKS document (RFC 7517): RSA (n, e) or EC P-256
// (crv, x, y).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// jwks is a parsed key set: kid → key, and the keys by algorithm for
// tokens without a kid.
type jwks struct {
	byKid map[string]jwksKey
	all   []jwksKey
}

type jwksKey struct {
	alg string // RS256 or ES256
	key crypto.PublicKey
}

// loadJWKS reads and parses a JWKS file; every key must be usable.
func loadJWKS(path string) (*jwks, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseJWKS(b, path)
}

func parseJWKS(b []byte, path string) (*jwks, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS document: %w", path, err)
	}
	if len(doc.Keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	ks := &jwks{byKid: map[string]jwksKey{}}
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, err := k.parse()
		if err != nil {
			return nil, fmt.Errorf("%s: keys[%d] (kid %q): %w", path, i, k.Kid, err)
		}
		if k.Kid != "" {
			if _, dup := ks.byKid[k.Kid]; dup {
				return nil, fmt.Errorf("%s: keys[%d]: duplicate kid %q", path, i, k.Kid)
			}
			ks.byKid[k.Kid] = key
		}
		ks.all = append(ks.all, key)
	}
	if len(ks.all) == 0 {
		return nil, fmt.Errorf("%s: no signing keys", path)
	}
	return ks, nil
}

func b64(field, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s: not base64url", field)
	}
	return b, nil
}

func (k *jwk) parse() (jwksKey, error) {
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return jwksKey{}, fmt.Errorf("alg %q: only RS256 for RSA keys", k.Alg)
		}
		n, err := b64("n", k.N)
		if err != nil {
			return jwksKey{}, err
		}
		e, err := b64("e", k.E)
		if err != nil {
			return jwksKey{}, err
		}
		if len(e) > 4 {
			return jwksKey{}, fmt.Errorf("e: %d bytes is too large", len(e))
		}
		ev := 0
		for _, x := range e {
			ev = ev<<8 | int(x)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
		if pub.N.BitLen() < 2048 || ev < 3 || ev%2 == 0 {
			return jwksKey{}, fmt.Errorf("RSA key of %d bits with exponent %d: need >= 2048 bits and an odd exponent >= 3", pub.N.BitLen(), ev)
		}
		return jwksKey{alg: "RS256", key: pub}, nil
	case "EC":
		if k.Crv != "P-256" {
			return jwksKey{}, fmt.Errorf("crv %q: only P-256 (ES256)", k.Crv)
		}
		if k.Alg != "" && k.Alg != "ES256" {
			return jwksKey{}, fmt.Errorf("alg %q: only ES256 for P-256 keys", k.Alg)
		}
		x, err := b64("x", k.X)
		if err != nil {
			return jwksKey{}, err
		}
		y, err := b64("y", k.Y)
		if err != nil {
			return jwksKey{}, err
		}
		if len(x) != 32 || len(y) != 32 {
			return jwksKey{}, fmt.Errorf("x, y: want 32 bytes each for P-256, got %d and %d", len(x), len(y))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return jwksKey{}, fmt.Errorf("not a P-256 point: %w", err)
		}
		return jwksKey{alg: "ES256", key: pub}, nil
	}
	return jwksKey{}, fmt.Errorf("kty %q: only RSA and EC", k.Kty)
}

// jwtVerifier verifies JWT bearer tokens against a JWKS file it reloads
// when the file changes.
type jwtVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser
	log    *slog.Logger
	now    func() time.Time

	keys    atomic.Pointer[jwks]
	last    atomic.Int64 // UnixNano of the last look at the file: the lock-free fast path
	mu      sync.Mutex   // serialises reloads
	checked time.Time    // last stat of the file (under mu)
	mtime   time.Time
	size    int64
}

func newJWTVerifier(c *JWTConfig, log *slog.Logger, now func() time.Time) (*jwtVerifier, error) {
	v := &jwtVerifier{cfg: *c, log: log, now: now}
	opts := []jwt.ParserOption{jwt.WithValidMethods(c.algorithms()), jwt.WithIssuer(c.Issuer), jwt.WithAudience(c.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(c.Leeway), jwt.WithTimeFunc(now)}
	v.parser = jwt.NewParser(opts...)
	st, err := os.Stat(c.JWKSFile)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.jwks_file: %w", err)
	}
	ks, err := loadJWKS(c.JWKSFile)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.jwks_file: %w", err)
	}
	v.keys.Store(ks)
	v.mtime, v.size, v.checked = st.ModTime(), st.Size(), now()
	v.last.Store(v.checked.UnixNano())
	return v, nil
}

// reload re-reads the JWKS file if it changed since the last look; force
// looks even if the last look was under a second ago (an unknown kid may
// mean the identity provider rotated its keys), but never more than ten
// times a second.
func (v *jwtVerifier) reload(force bool) {
	wait := time.Second
	if force {
		wait = 100 * time.Millisecond
	}
	if time.Duration(v.now().UnixNano()-v.last.Load()) < wait {
		return // every request asks: most must not take the lock
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if now.Sub(v.checked) < wait {
		return
	}
	v.checked = now
	v.last.Store(now.UnixNano())
	st, err := os.Stat(v.cfg.JWKSFile)
	if err != nil {
		v.log.Warn("jwks file: keeping the loaded keys", "path", v.cfg.JWKSFile, "err", err)
		return
	}
	if st.ModTime().Equal(v.mtime) && st.Size() == v.size {
		return
	}
	ks, err := loadJWKS(v.cfg.JWKSFile)
	if err != nil {
		v.log.Warn("jwks file changed but does not load: keeping the previous keys", "err", err)
		return
	}
	v.mtime, v.size = st.ModTime(), st.Size()
	v.keys.Store(ks)
	v.log.Info("jwks file reloaded", "path", v.cfg.JWKSFile, "keys", len(ks.all))
}

var errUnknownKid = errors.New("no key for the token's kid in the JWKS file")

// keyFor picks the verification key of a parsed (unverified) token.
func (v *jwtVerifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	pick := func(ks *jwks) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != "" {
			k, ok := ks.byKid[kid]
			if !ok {
				return nil, errUnknownKid
			}
			if k.alg != alg {
				return nil, fmt.Errorf("key %q is for %s, the token says %s", kid, k.alg, alg)
			}
			return k.key, nil
		}
		var found any
		for _, k := range ks.all {
			if k.alg == alg {
				if found != nil {
					return nil, fmt.Errorf("the token has no kid and the JWKS file has several %s keys", alg)
				}
				found = k.key
			}
		}
		if found == nil {
			return nil, fmt.Errorf("no %s key in the JWKS file", alg)
		}
		return found, nil
	}
	k, err := pick(v.keys.Load())
	if errors.Is(err, errUnknownKid) {
		v.reload(true)
		k, err = pick(v.keys.Load())
	}
	return k, err
}

// jwtIdentity is what a verified token says about its bearer.
type jwtIdentity struct {
	subject, tenant string
	scopes          scopeSet
}

// verify checks a token and returns its identity; the error says why a
// token is refused (it goes to the client: it names no key material).
func (v *jwtVerifier) verify(raw string) (jwtIdentity, error) {
	v.reload(false)
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyFor); err != nil {
		return jwtIdentity{}, err
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return jwtIdentity{}, fmt.Errorf("token has no sub claim")
	}
	tenant, _ := claims[v.cfg.tenantClaim()].(string)
	if tenant == "" {
		return jwtIdentity{}, fmt.Errorf("token has no %q claim naming the tenant", v.cfg.tenantClaim())
	}
	return jwtIdentity{subject: sub, tenant: tenant, scopes: claimScopes(claims[v.cfg.scopesClaim()])}, nil
}

// looksLikeJWT: three base64url parts, the first a JSON object ("eyJ").
func looksLikeJWT(tok string) bool {
	return strings.HasPrefix(tok, "eyJ") && strings.Count(tok, ".") == 2
}

// setupJWT builds the keyring's JWT verifier from auth.jwt, if set.
func (s *Server) setupJWT() error {
	j := s.cfg.Auth.JWT
	if j == nil {
		return nil
	}
	v, err := newJWTVerifier(j, s.log, s.now)
	if err != nil {
		return err
	}
	s.keys.jwt = v
	s.keys.jwtLims = &tenantLimits{fixed: map[string]*rate.Limiter{}, def: s.cfg.RateLimits.PerKey, dyn: map[string]*rate.Limiter{}}
	if s.keys.jwtLims.def != nil {
		s.keys.jwtLims.other = newLimiter(s.keys.jwtLims.def)
	}
	return nil
}
