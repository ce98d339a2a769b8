package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"sync"
)

// Request ids are "rl-" + 32 hex digits of randomness (128 bits from a
// ChaCha8 generator seeded from crypto/rand, one per goroutine via a
// sync.Pool) + 16 hex digits binding the id to the bearer credential that
// made the request: the first 8 bytes of HMAC-SHA256(secret, random ||
// credential), secret drawn from crypto/rand per server. An id can thus be
// neither guessed nor rated with another credential (see ownsID), without
// keeping any per-request state.
type idSource struct {
	secret [32]byte
	pool   sync.Pool // *idGen
}

// idGen is one goroutine's generator and keyed MAC (Reset keeps the key).
type idGen struct {
	rng *mrand.ChaCha8
	mac hash.Hash
	sum [sha256.Size]byte
	// raw is next's scratch: a local array would escape through mac.
	raw [idRandBytes + idMACBytes]byte
}

const (
	idRandBytes = 16
	idMACBytes  = 8
	idPrefix    = "rl-"
	idLen       = len(idPrefix) + 2*(idRandBytes+idMACBytes)
)

func newIDSource() (*idSource, error) {
	s := &idSource{}
	if _, err := rand.Read(s.secret[:]); err != nil {
		return nil, fmt.Errorf("request id secret: %w", err)
	}
	s.pool.New = func() any {
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails on supported platforms
		return &idGen{rng: mrand.NewChaCha8(seed), mac: hmac.New(sha256.New, s.secret[:])}
	}
	return s, nil
}

func (g *idGen) tag(dst []byte, random []byte, cred string) {
	g.mac.Reset()
	g.mac.Write(random)
	_, _ = io.WriteString(g.mac, cred)
	copy(dst, g.mac.Sum(g.sum[:0])[:idMACBytes])
}

func (s *idSource) mac(dst []byte, random []byte, cred string) {
	g := s.pool.Get().(*idGen)
	g.tag(dst, random, cred)
	s.pool.Put(g)
}

// next returns a fresh id owned by credential cred (the bearer token).
func (s *idSource) next(cred string) string {
	g := s.pool.Get().(*idGen)
	raw := g.raw[:]
	_, _ = g.rng.Read(raw[:idRandBytes]) // ChaCha8.Read never fails
	g.tag(raw[idRandBytes:], raw[:idRandBytes], cred)
	var out [idLen]byte
	copy(out[:], idPrefix)
	hex.Encode(out[len(idPrefix):], raw)
	s.pool.Put(g)
	return string(out[:])
}

// owns reports whether id was issued by this source to credential cred.
func (s *idSource) owns(id, cred string) bool {
	if len(id) != idLen || id[:len(idPrefix)] != idPrefix {
		return false
	}
	var raw [idRandBytes + idMACBytes]byte
	if _, err := hex.Decode(raw[:], []byte(id[len(idPrefix):])); err != nil {
		return false
	}
	var want [idMACBytes]byte
	s.mac(want[:], raw[:idRandBytes], cred)
	return hmac.Equal(want[:], raw[idRandBytes:])
}

// nextID returns a new request id owned by cred (see owner: the bearer
// token, or a JWT's subject).
func (s *Server) nextID(cred string) string {
	s.requestsSeen.Add(1)
	return s.ids.next(cred)
}
