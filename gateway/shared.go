package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/routelab/routelab/sharedstate"
)

// sharedState is the gateway's side of state.redis (docs/scale-out.md):
// the shared policy record, one statistics sync per shared policy, the
// shared rate-limit buckets and the pending-feedback backend.
//
// The policy record (hash "<prefix>policy") names the serving and shadow
// policies of the deployment: per slot a shared statistics id, the
// policy's spec, where it came from ("config-serving", "config-shadow" or
// a runtime swap) and the promotion floor around it; "gen" counts changes
// and "kind" says what the last one was (start, set, promote, rollback).
// A replica changes it only by compare-and-swap on gen, right after an
// admin swap, promotion or rollback; every replica reads it every merge
// interval and adopts a newer generation (the swap is then the same atomic
// route.Core swap the admin API does). Kinds: start, set (serving policy
// swapped by hand), shadow (shadow set or removed), promote, rollback.
type sharedState struct {
	c   *sharedstate.Client
	cfg *RedisConfig
	fp  string // fingerprint of the configured policies

	keyLimits    map[string]*LimitConfig // key name → its bucket
	tenantLimits map[string]*LimitConfig // configured tenants
	tenantDef    *LimitConfig

	mu       sync.Mutex
	gen      string // record generation this replica runs
	dirty    string // kind of a local change not yet in the record ("" none)
	ids      map[policy.Policy]string
	insts    map[string]policy.Policy
	syncs    map[string]*sharedstate.StatsSync
	cfgPols  map[string]policy.Policy // origin → the configured instance
	lastGood atomic.Int64             // unix nanos of the last full merge

	merges    *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
}

const (
	originServing = "config-serving"
	originShadow  = "config-shadow"
	recordName    = "policy"
)

// setupShared connects to Redis when the config has state.redis. It runs
// before the decision core is built (the core takes the pending backend).
func (s *Server) setupShared() error {
	rc := s.cfg.State.Redis
	if rc == nil {
		return nil
	}
	sh := &sharedState{cfg: rc, ids: map[policy.Policy]string{}, insts: map[string]policy.Policy{},
		syncs: map[string]*sharedstate.StatsSync{}, cfgPols: map[string]policy.Policy{},
		keyLimits: map[string]*LimitConfig{}, tenantLimits: map[string]*LimitConfig{}, tenantDef: s.cfg.RateLimits.PerTenant}
	c, err := sharedstate.New(sharedstate.Opts{Addr: rc.Addr, Password: rc.password(), DB: rc.DB, Prefix: rc.Prefix, Timeout: rc.Timeout,
		OnChange: func(up bool) {
			if up {
				s.log.Info("redis reachable: sharing state again", "addr", rc.Addr)
			} else {
				s.log.Warn("redis unreachable: serving on local state", "addr", rc.Addr)
			}
		}})
	if err != nil {
		return fmt.Errorf("state.redis: %w", err)
	}
	sh.c = c
	h := sha256.New()
	fmt.Fprintf(h, "%+v|%+v", s.cfg.Policy, s.cfg.Shadow)
	sh.fp = hex.EncodeToString(h.Sum(nil)[:8])
	for _, k := range s.cfg.Auth.Keys {
		if k.Limit != nil {
			sh.keyLimits[k.Name] = k.Limit
		} else if s.cfg.RateLimits.PerKey != nil {
			sh.keyLimits[k.Name] = s.cfg.RateLimits.PerKey
		}
	}
	if len(s.cfg.Auth.Keys) == 0 && s.cfg.RateLimits.PerKey != nil {
		sh.keyLimits[""] = s.cfg.RateLimits.PerKey // anonymous (development mode)
	}
	for _, t := range s.cfg.Tenants {
		if t.Limit != nil {
			sh.tenantLimits[t.Name] = t.Limit
		}
	}
	sh.merges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_state_merges_total", Help: "Merges of learned policy statistics with Redis, by result (ok, failed).",
	}, []string{"result"})
	sh.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_state_local_fallbacks_total", Help: "Decisions taken on local state because Redis was unreachable, by what (rate_limit).",
	}, []string{"what"})
	s.m.reg.MustRegister(sh.merges, sh.fallbacks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "routelab_state_redis_up", Help: "1 while Redis (state.redis) is reachable, 0 while the replica serves on local state."},
			func() float64 { return b2f(c.Up()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "routelab_state_merge_age_seconds", Help: "Seconds since the serving policy's statistics were last merged with Redis (-1: never)."},
			func() float64 { return sh.mergeAge(time.Now()) }))
	s.shared = sh
	ctx, cancel := context.WithTimeout(context.Background(), 5*rc.Timeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		s.log.Warn("redis unreachable at start: serving on local state; feedback reaching another replica will not join requests of this one until restart", "addr", rc.Addr, "err", err)
		return nil
	}
	// Request ids are bound to their credential by a MAC: with the
	// deployment's shared key, any replica can verify an id for feedback.
	secret, err := c.Secret(ctx, "request-ids")
	if err != nil {
		s.log.Warn("redis: shared request-id key unavailable; feedback joins on this replica only", "err", err)
		return nil
	}
	copy(s.ids.secret[:], secret)
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (sh *sharedState) mergeAge(now time.Time) float64 {
	t := sh.lastGood.Load()
	if t == 0 {
		return -1
	}
	return now.Sub(time.Unix(0, t)).Seconds()
}

// pendingBackend is the core's pending-store backend: nil without Redis.
func (s *Server) pendingBackend() route.PendingBackend {
	if s.shared == nil {
		return nil
	}
	return redisPending{s.shared.c}
}

type redisPending struct{ c *sharedstate.Client }

func (r redisPending) Put(id string, data []byte, ttl time.Duration) error {
	return r.c.PutPending(id, data, ttl)
}

func (r redisPending) Take(id string) ([]byte, bool, error) { return r.c.TakePending(id) }

// attachShared joins the shared policy record once the core is built:
// it adopts the record when it is of this configuration (a restarted or
// added replica resumes from the shared statistics) and otherwise starts
// one from this replica's policies, publishing their complete state (a
// warm start from an artifact or checkpoint) once.
func (s *Server) attachShared(serving, shadow policy.Policy) {
	sh := s.shared
	if sh == nil {
		return
	}
	sh.cfgPols[originServing] = serving
	if shadow != nil {
		sh.cfgPols[originShadow] = shadow
	}
	if !sh.c.Up() {
		return
	}
	s.sharedTickAt(context.Background(), true)
}

// startShared runs the merge loop until ctx is done.
func (s *Server) startShared(ctx context.Context) {
	if s.shared == nil {
		return
	}
	go loop(ctx, s.shared.cfg.MergeInterval, func(time.Time) { s.sharedTickAt(ctx, false) })
}

// closeShared publishes what the policies learned since the last merge
// (on drain) and closes the connection.
func (s *Server) closeShared() {
	if s.shared == nil {
		return
	}
	s.syncShared(context.Background())
	_ = s.shared.c.Close()
}

// sharedTickAt is one merge: reach Redis (ping while it is down), adopt
// or write the policy record, then merge the statistics.
func (s *Server) sharedTickAt(ctx context.Context, startup bool) {
	sh := s.shared
	if !sh.c.Up() {
		if sh.c.Ping(ctx) != nil {
			sh.merges.WithLabelValues("failed").Inc()
			return
		}
	}
	s.policyMu.Lock()
	err := s.reconcileLocked(ctx, startup)
	s.policyMu.Unlock()
	if err != nil {
		s.log.Warn("shared policy record", "err", err)
	}
	s.syncShared(ctx)
}

// syncShared merges the statistics of the serving and shadow policies.
func (s *Server) syncShared(ctx context.Context) {
	sh := s.shared
	serving, shadow := s.core.Policy(), s.core.ShadowPolicy()
	sh.mu.Lock()
	ss, sd := sh.syncFor(serving), sh.syncFor(shadow)
	sh.mu.Unlock()
	for i, sync := range []*sharedstate.StatsSync{ss, sd} {
		if sync == nil {
			continue
		}
		if err := sync.Sync(ctx); err != nil {
			sh.merges.WithLabelValues("failed").Inc()
			if !errors.Is(err, sharedstate.ErrDown) && sh.c.Up() {
				s.log.Warn("shared statistics not merged", "err", err)
			}
			return
		}
		sh.merges.WithLabelValues("ok").Inc()
		if i == 0 {
			sh.lastGood.Store(time.Now().UnixNano())
		}
	}
	if ss == nil && sh.c.Up() {
		sh.lastGood.Store(time.Now().UnixNano()) // nothing to merge: the record is current
	}
}

// base returns the instance p stands for (p, or the inner policy of a
// promotion floor around a known instance) and that floor.
func (sh *sharedState) base(p policy.Policy) (policy.Policy, float64) {
	if !reflect.TypeOf(p).Comparable() {
		return p, 0 // cannot key a map: never shared (builtin policies are pointers)
	}
	if _, ok := sh.ids[p]; ok {
		return p, 0
	}
	if f, ok := p.(*policy.Floor); ok {
		if _, known := sh.ids[f.Inner()]; known {
			return f.Inner(), f.Epsilon()
		}
	}
	return p, 0
}

// syncFor returns the statistics sync of p's instance, or nil. Callers hold mu.
func (sh *sharedState) syncFor(p policy.Policy) *sharedstate.StatsSync {
	if p == nil {
		return nil
	}
	b, _ := sh.base(p)
	if !reflect.TypeOf(b).Comparable() {
		return nil
	}
	return sh.syncs[sh.ids[b]]
}

// bind makes id the shared id of instance p. seed publishes p's complete
// state (the replica starting these statistics); otherwise p's state is
// replaced by the shared totals at the next merge. Callers hold mu.
func (sh *sharedState) bind(p policy.Policy, id string, seed bool) {
	if !reflect.TypeOf(p).Comparable() {
		return
	}
	var prev *sharedstate.StatsSync
	if old, ok := sh.ids[p]; ok && old != id {
		prev = sh.syncs[old]
		delete(sh.insts, old)
		delete(sh.syncs, old)
	}
	sh.ids[p], sh.insts[id] = id, p
	if m, ok := policy.AsMergeable(p); ok {
		sync := sh.c.NewStatsSync(id, m)
		if seed {
			sync.Seed()
		} else if prev != nil {
			sync.Carry(prev) // learned here, never merged: into the new totals
		}
		sh.syncs[id] = sync
	}
}

func newSharedID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// slotFields describes p for the record under prefix ("serving."), giving
// an instance seen for the first time a new id and seeding its statistics.
// Callers hold mu.
func (sh *sharedState) slotFields(prefix string, p policy.Policy, f map[string]string) {
	if p == nil {
		return
	}
	b, floor := sh.base(p)
	if !reflect.TypeOf(b).Comparable() {
		return
	}
	id, ok := sh.ids[b]
	if !ok {
		id = newSharedID()
		sh.bind(b, id, true)
	}
	f[prefix+"id"] = id
	if sp, ok := policy.SpecOf(b); ok {
		f[prefix+"spec"] = sp.String()
	}
	for origin, cp := range sh.cfgPols {
		if cp == b {
			f[prefix+"origin"] = origin
		}
	}
	if floor > 0 {
		f[prefix+"floor"] = strconv.FormatFloat(floor, 'g', -1, 64)
	}
}

// writeRecordLocked writes the current serving/shadow pair as the next
// generation. Callers hold policyMu.
func (s *Server) writeRecordLocked(ctx context.Context, kind string) error {
	sh := s.shared
	sh.mu.Lock()
	f := map[string]string{"config": sh.fp, "kind": kind, "replica": sh.c.Replica()}
	sh.slotFields("serving.", s.core.Policy(), f)
	sh.slotFields("shadow.", s.core.ShadowPolicy(), f)
	gen := sh.gen
	sh.mu.Unlock()
	n, _ := strconv.ParseUint(gen, 10, 64)
	f["gen"] = strconv.FormatUint(n+1, 10)
	ok, err := sh.c.SwapHash(ctx, recordName, gen, f)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case err != nil:
		sh.dirty = kind
		return fmt.Errorf("policy change not shared yet (redis unreachable): %w", err)
	case !ok:
		sh.dirty = ""
		return fmt.Errorf("policy record changed by another replica at the same time; adopting theirs")
	}
	sh.gen, sh.dirty = f["gen"], ""
	return nil
}

// shareSwap publishes a policy swap made through the admin API (set,
// promote, rollback) so that every replica adopts it. Callers hold
// policyMu.
func (s *Server) shareSwap(kind string) {
	if s.shared == nil {
		return
	}
	if !s.shared.c.Up() {
		s.shared.mu.Lock()
		s.shared.dirty = kind
		s.shared.mu.Unlock()
		s.log.Warn("policy change kept local until redis is back", "kind", kind)
		return
	}
	if err := s.writeRecordLocked(context.Background(), kind); err != nil {
		s.log.Warn("shared policy record", "err", err)
	}
}

// reconcileLocked brings this replica and the record together. Callers
// hold policyMu.
func (s *Server) reconcileLocked(ctx context.Context, startup bool) error {
	sh := s.shared
	rec, err := sh.c.GetHash(ctx, recordName)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	gen, dirty := sh.gen, sh.dirty
	sh.mu.Unlock()
	switch {
	case len(rec) == 0 || (startup && rec["config"] != sh.fp):
		// No record (first replica, or Redis lost its data), or this
		// replica starts with another configuration: its policies become
		// the deployment's, starting new shared statistics.
		sh.mu.Lock()
		sh.gen = rec["gen"]
		sh.ids = map[policy.Policy]string{}
		sh.insts, sh.syncs = map[string]policy.Policy{}, map[string]*sharedstate.StatsSync{}
		sh.mu.Unlock()
		return s.writeRecordLocked(ctx, "start")
	case rec["gen"] != gen:
		return s.adoptLocked(rec, startup || gen == "")
	case dirty != "":
		return s.writeRecordLocked(ctx, dirty)
	}
	return nil
}

// resolve returns the instance for a record slot: one this replica knows
// by id, the configured one the slot came from, or one built from its spec.
// Callers hold mu.
func (s *Server) resolve(rec map[string]string, slot string) (policy.Policy, error) {
	sh := s.shared
	id := rec[slot+"id"]
	if id == "" {
		return nil, nil
	}
	var b policy.Policy
	if p := sh.insts[id]; p != nil {
		b = p
	} else if p := sh.cfgPols[rec[slot+"origin"]]; p != nil && rec["config"] == sh.fp {
		// The record's configured policy is this replica's own (same
		// configuration): it joins with that instance (an artifact's
		// model included) rather than one built from the spec.
		b = p
		sh.bind(b, id, false)
	} else {
		sp, err := policy.ParseSpec(rec[slot+"spec"])
		if err != nil {
			return nil, fmt.Errorf("%sspec %q: %w", slot, rec[slot+"spec"], err)
		}
		if b, err = s.reg.New(sp); err != nil {
			return nil, fmt.Errorf("%sspec %q: %w", slot, rec[slot+"spec"], err)
		}
		sh.bind(b, id, false)
	}
	if fs := rec[slot+"floor"]; fs != "" {
		eps, err := strconv.ParseFloat(fs, 64)
		if err != nil || !(eps > 0 && eps <= 1) {
			return nil, fmt.Errorf("%sfloor %q not in (0,1]", slot, fs)
		}
		return withPromotionFloor(b, eps, s.promo.nextSeed())
	}
	return b, nil
}

// adoptLocked installs the record's serving and shadow policies (the same
// atomic swaps as the admin API) and mirrors its promotion state. Callers
// hold policyMu.
func (s *Server) adoptLocked(rec map[string]string, startup bool) error {
	sh := s.shared
	sh.mu.Lock()
	serving, err := s.resolve(rec, "serving.")
	var shadow policy.Policy
	if err == nil {
		shadow, err = s.resolve(rec, "shadow.")
	}
	sh.gen, sh.dirty = rec["gen"], ""
	sh.mu.Unlock()
	if err != nil {
		return fmt.Errorf("adopt policy record generation %s: %w", rec["gen"], err)
	}
	if serving == nil {
		return fmt.Errorf("adopt policy record generation %s: no serving policy", rec["gen"])
	}
	old := s.core.Policy()
	s.core.SetShadow(nil)
	s.core.SetPolicy(serving)
	s.core.SetShadow(shadow)
	if !startup {
		switch rec["kind"] {
		case "promote":
			s.promo.promoted(old, math.NaN()) // the guard runs where the promotion was decided
		case "rollback":
			s.promo.takePrevious()
		case "set", "start":
			s.promo.disarm() // as POST /admin/policy does
		}
		s.log.Info("adopted shared policy change", "kind", rec["kind"], "generation", rec["gen"], "policy", serving.Name(), "by", rec["replica"])
	}
	return nil
}

// takeKey takes a request from the caller's bucket: the shared one while
// Redis is reachable, the local one otherwise.
func (s *Server) takeKey(ctx context.Context, cl *caller) (bool, time.Duration) {
	if cl.lim == nil {
		return true, 0
	}
	if sh := s.shared; sh != nil {
		if l := sh.keyLimits[cl.key]; l != nil {
			if ok, wait, err := sh.allow(ctx, "key:"+cl.key, l); err == nil {
				return ok, wait
			}
		}
	}
	return take(cl.lim, time.Now())
}

// takeTenant is takeKey for the tenant's bucket.
func (s *Server) takeTenant(ctx context.Context, tenant string) (bool, time.Duration) {
	l := s.tenants.limiter(tenant)
	if l == nil {
		return true, 0
	}
	if sh := s.shared; sh != nil {
		cfg := sh.tenantLimits[tenant]
		if cfg == nil {
			cfg = sh.tenantDef
		}
		if cfg != nil {
			if ok, wait, err := sh.allow(ctx, "tenant:"+tenant, cfg); err == nil {
				return ok, wait
			}
		}
	}
	return take(l, time.Now())
}

func (sh *sharedState) allow(ctx context.Context, key string, l *LimitConfig) (bool, time.Duration, error) {
	burst := l.Burst
	if burst == 0 {
		burst = max(1, int(l.RPS))
	}
	ok, wait, err := sh.c.Allow(ctx, key, l.RPS, burst)
	if err != nil {
		sh.fallbacks.WithLabelValues("rate_limit").Inc()
	}
	return ok, wait, err
}

// readyDetail answers /readyz for a replica that is otherwise ready.
func (s *Server) readyDetail(c *gin.Context) {
	if sh := s.shared; sh != nil && !sh.c.Up() {
		if sh.cfg.Required {
			c.String(http.StatusServiceUnavailable, "not ready: redis unreachable (state.redis.required)\n")
			return
		}
		c.String(http.StatusOK, "ready (degraded: redis unreachable, serving on local state)\n")
		return
	}
	c.String(http.StatusOK, "ready\n")
}
