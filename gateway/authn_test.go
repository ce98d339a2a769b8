package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testIdP is an identity provider for tests: an RSA and an EC key, their
// JWKS file, and tokens signed by them.
type testIdP struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	jwks string // path
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newTestIdP(t testing.TB) *testIdP {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	idp := &testIdP{rsa: rk, ec: ek, jwks: filepath.Join(t.TempDir(), "jwks.json")}
	idp.writeJWKS(t, "r1", "e1")
	return idp
}

// writeJWKS publishes the RSA key as rsaKid and the EC key as ecKid.
func (p *testIdP) writeJWKS(t testing.TB, rsaKid, ecKid string) {
	t.Helper()
	ecPub, err := p.ec.PublicKey.Bytes() // 0x04 || X || Y
	require.NoError(t, err)
	doc := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": rsaKid, "alg": "RS256", "use": "sig", "n": b64u(p.rsa.N.Bytes()), "e": b64u(big.NewInt(int64(p.rsa.E)).Bytes())},
		{"kty": "EC", "kid": ecKid, "alg": "ES256", "crv": "P-256", "x": b64u(ecPub[1:33]), "y": b64u(ecPub[33:])},
	}}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	tmp := p.jwks + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o644))
	require.NoError(t, os.Rename(tmp, p.jwks))
}

// token signs claims (iss, aud, exp, iat filled unless given) with the
// RSA ("RS256") or EC ("ES256") key under kid.
func (p *testIdP) token(t testing.TB, alg, kid string, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	for k, v := range map[string]any{"iss": "https://idp.test", "aud": "routelab", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "sub": "svc-1"} {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	var tok *jwt.Token
	var key any
	switch alg {
	case "RS256":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodRS256, claims), p.rsa
	case "ES256":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodES256, claims), p.ec
	case "HS256": // alg confusion: an HMAC over the RSA public key
		tok, key = jwt.NewWithClaims(jwt.SigningMethodHS256, claims), p.rsa.N.Bytes()
	}
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func authYAML(idp *testIdP) string {
	return fmt.Sprintf(`
auth:
  keys:
    - {name: plain, tenant: tp, sha256: %s}
    - {name: chatonly, tenant: tc, sha256: %s, scopes: [chat]}
    - {name: reader, tenant: tr, sha256: %s, scopes: [chat, admin-read]}
  admin_token_sha256: %s
  jwt: {jwks_file: %s, issuer: "https://idp.test", audience: routelab}
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, HashKey("k-plain"), HashKey("k-chat"), HashKey("k-reader"), HashKey("adm"), idp.jwks)
}

func send(t *testing.T, method, url, cred, body string) (int, http.Header, apiErrorBody) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var e apiErrorBody
	if res.StatusCode >= 400 && bytes.HasPrefix(b, []byte("{")) {
		require.NoError(t, json.Unmarshal(b, &e), "%s", b)
	}
	return res.StatusCode, res.Header, e
}

func errCode(e apiErrorBody) string {
	if e.Error.Code == nil {
		return ""
	}
	return *e.Error.Code
}

// TestJWTBearerAuth: tokens signed with RS256 and ES256 by keys of the
// JWKS file are accepted with the tenant of their claim; expired tokens,
// other issuers and audiences, unknown keys, HS256 (alg confusion), and
// tokens without a tenant are refused with 401 invalid_token.
func TestJWTBearerAuth(t *testing.T) {
	idp := newTestIdP(t)
	gw := startGateway(t, authYAML(idp))
	chat := fmt.Sprintf(msgBody, "auto", "")
	for _, alg := range []string{"RS256", "ES256"} {
		kid := map[string]string{"RS256": "r1", "ES256": "e1"}[alg]
		tok := idp.token(t, alg, kid, jwt.MapClaims{"tenant": "acme", "scope": "chat feedback"})
		code, hdr, e := send(t, "POST", gw.url+"/v1/chat/completions", tok, chat)
		require.Equal(t, 200, code, "%s: %v", alg, e.Error.Message)
		rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
		require.True(t, ok)
		assert.Equal(t, "acme", rec.Request.Features.Tenant, "%s: the tenant comes from the claim", alg)
		// The token's subject owns the request id: feedback with the same
		// subject's token is accepted.
		fb := fmt.Sprintf(`{"request_id":%q,"quality":1}`, hdr.Get(HeaderRequestID))
		code, _, e = send(t, "POST", gw.url+"/v1/feedback", tok, fb)
		assert.Equal(t, 200, code, "%s feedback: %v", alg, e.Error.Message)
	}
	for _, tc := range []struct {
		name, tok string
	}{
		{"expired", idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "acme", "scope": "chat", "exp": time.Now().Add(-time.Hour).Unix()})},
		{"other issuer", idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "acme", "scope": "chat", "iss": "https://evil.test"})},
		{"other audience", idp.token(t, "ES256", "e1", jwt.MapClaims{"tenant": "acme", "scope": "chat", "aud": "billing"})},
		{"unknown kid", idp.token(t, "RS256", "nope", jwt.MapClaims{"tenant": "acme", "scope": "chat"})},
		{"hs256 alg confusion", idp.token(t, "HS256", "r1", jwt.MapClaims{"tenant": "acme", "scope": "chat"})},
		{"no tenant", idp.token(t, "RS256", "r1", jwt.MapClaims{"scope": "chat"})},
		{"no exp", idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "acme", "scope": "chat", "exp": nil})},
		{"tampered", idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "acme", "scope": "chat"}) + "x"},
	} {
		code, _, e := send(t, "POST", gw.url+"/v1/chat/completions", tc.tok, chat)
		assert.Equal(t, 401, code, tc.name)
		assert.Equal(t, "invalid_token", errCode(e), tc.name)
	}
}

// TestScopesEnforcedPerRoute: every route needs its scope; a valid
// credential without it gets 403 insufficient_scope naming the scope.
func TestScopesEnforcedPerRoute(t *testing.T) {
	idp := newTestIdP(t)
	gw := startGateway(t, authYAML(idp))
	chat := fmt.Sprintf(msgBody, "auto", "")
	jwtChat := idp.token(t, "ES256", "e1", jwt.MapClaims{"tenant": "acme", "scope": "chat other:scope"})
	jwtRead := idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "ops", "scp": []string{"admin-read"}, "scope": []string{"admin-read"}})
	jwtWrite := idp.token(t, "RS256", "r1", jwt.MapClaims{"tenant": "ops", "scope": "admin-read admin-write"})
	fb := `{"request_id":"x","quality":1}`
	for _, tc := range []struct {
		name, method, path, cred, body string
		code                           int
		scope                          string // named in the 403
	}{
		{"plain key chats", "POST", "/v1/chat/completions", "k-plain", chat, 200, ""},
		{"plain key on admin", "GET", "/admin/policy", "k-plain", "", 403, "admin-read"},
		{"chat-only key feedback", "POST", "/v1/feedback", "k-chat", fb, 403, "feedback"},
		{"reader key reads admin", "GET", "/admin/policy", "k-reader", "", 200, ""},
		{"reader key writes admin", "POST", "/admin/rollback", "k-reader", "{}", 403, "admin-write"},
		{"jwt chat", "POST", "/v1/chat/completions", jwtChat, chat, 200, ""},
		{"jwt chat lists models", "GET", "/v1/models", jwtChat, "", 200, ""},
		{"jwt chat feedback", "POST", "/v1/feedback", jwtChat, fb, 403, "feedback"},
		{"jwt chat on admin", "GET", "/admin/shadow/status", jwtChat, "", 403, "admin-read"},
		{"jwt admin-read chats", "POST", "/v1/chat/completions", jwtRead, chat, 403, "chat"},
		{"jwt admin-read reads", "GET", "/admin/models", jwtRead, "", 200, ""},
		{"jwt admin-read swaps policy", "POST", "/admin/policy", jwtRead, `{"policy":"random"}`, 403, "admin-write"},
		{"jwt admin-write swaps policy", "POST", "/admin/policy", jwtWrite, `{"policy":"random"}`, 200, ""},
		{"admin token reads", "GET", "/admin/policy", "adm", "", 200, ""},
		{"admin token on chat", "POST", "/v1/chat/completions", "adm", chat, 401, ""},
	} {
		code, hdr, e := send(t, tc.method, gw.url+tc.path, tc.cred, tc.body)
		require.Equal(t, tc.code, code, "%s: %s", tc.name, e.Error.Message)
		if tc.code == 403 {
			assert.Equal(t, "insufficient_scope", errCode(e), tc.name)
			assert.Contains(t, e.Error.Message, fmt.Sprintf("%q", tc.scope), tc.name)
			assert.Contains(t, hdr.Get("WWW-Authenticate"), `scope="`+tc.scope+`"`, tc.name)
		}
	}
	assert.Equal(t, "random", gw.srv.Core().Policy().Name(), "the admin-write JWT swapped the policy")
}

// TestJWKSReload: a key published in the JWKS file after start-up is
// accepted without a restart; a broken file keeps the previous keys.
func TestJWKSReload(t *testing.T) {
	idp := newTestIdP(t)
	gw := startGateway(t, authYAML(idp))
	chat := fmt.Sprintf(msgBody, "auto", "")
	rotated := idp.token(t, "RS256", "r2", jwt.MapClaims{"tenant": "acme", "scope": "chat"})
	code, _, _ := send(t, "POST", gw.url+"/v1/chat/completions", rotated, chat)
	require.Equal(t, 401, code, "kid r2 is not published yet")
	idp.writeJWKS(t, "r2", "e2")
	require.Eventually(t, func() bool {
		code, _, _ := send(t, "POST", gw.url+"/v1/chat/completions", rotated, chat)
		return code == 200
	}, 10*time.Second, 50*time.Millisecond, "the rotated key is picked up without a restart")
	require.NoError(t, os.WriteFile(idp.jwks, []byte("{not json"), 0o644))
	time.Sleep(1100 * time.Millisecond) // past the once-a-second stat: the broken file is seen
	code, _, e := send(t, "POST", gw.url+"/v1/chat/completions", rotated, chat)
	assert.Equal(t, 200, code, "a broken JWKS file keeps the previous keys: %s", e.Error.Message)
}

// TestJWTConfigErrors: auth.jwt is validated up front, naming the field.
func TestJWTConfigErrors(t *testing.T) {
	idp := newTestIdP(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`), 0o644))
	base := "providers: [{name: sim, type: sim}]\nmodels: [{id: s, provider: sim, sim: {}}]\nlog: {dir: \"\"}\n"
	for _, tc := range []struct{ jwt, want string }{
		{`{issuer: i, audience: a}`, "auth.jwt.jwks_file: required"},
		{fmt.Sprintf(`{jwks_file: %s, audience: a}`, idp.jwks), "auth.jwt.issuer"},
		{fmt.Sprintf(`{jwks_file: %s, issuer: i}`, idp.jwks), "auth.jwt.audience"},
		{fmt.Sprintf(`{jwks_file: %s, issuer: i, audience: a, algorithms: [HS256]}`, idp.jwks), "auth.jwt.algorithms[0]"},
		{fmt.Sprintf(`{jwks_file: %s, issuer: i, audience: a}`, bad), "need >= 2048 bits"},
		{`{jwks_file: /nonexistent/jwks.json, issuer: i, audience: a}`, "auth.jwt.jwks_file"},
	} {
		_, err := ParseConfig([]byte("auth: {jwt: " + tc.jwt + "}\n" + base))
		require.Error(t, err, tc.jwt)
		assert.Contains(t, err.Error(), tc.want, tc.jwt)
	}
	_, err := ParseConfig([]byte("auth: {keys: [{name: k, sha256: " + HashKey("k") + ", scopes: [chat, root]}], admin_token_sha256: " + HashKey("a") + "}\n" + base))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `auth.keys[0].scopes: [1]: "root" is not a scope`)
}

// BenchmarkJWTVerify is the cost a JWT adds to a request (RS256 and ES256
// signature checks dominate).
func BenchmarkJWTVerify(b *testing.B) {
	idp := newTestIdP(b)
	v, err := newJWTVerifier(&JWTConfig{JWKSFile: idp.jwks, Issuer: "https://idp.test", Audience: "routelab"}, nil, time.Now)
	require.NoError(b, err)
	for _, alg := range []string{"RS256", "ES256"} {
		kid := map[string]string{"RS256": "r1", "ES256": "e1"}[alg]
		tok := idp.token(b, alg, kid, jwt.MapClaims{"tenant": "acme", "scope": "chat"})
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
