package gateway

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/mask"
	"github.com/routelab/routelab/policy"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfigYAML returns the embedded development configuration.
func DefaultConfigYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the gateway's YAML configuration; docs/config.md is its
// reference. Load fills defaults and validates.
type Config struct {
	// Mode is "development" (API keys optional, a warning at start-up) or
	// "production" (API keys and an admin token required).
	Mode   string `yaml:"mode"`
	Listen string `yaml:"listen"`
	// MaxBodyBytes limits a request body (413 above it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RequestTimeout bounds a whole request, fallbacks included. A client's
	// X-Routelab-Timeout header may shorten it, never lengthen it.
	RequestTimeout  time.Duration `yaml:"request_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Aliases are model names that mean "route with the policy".
	Aliases []string `yaml:"aliases"`
	// OpenPaths are served without any credential.
	OpenPaths []string `yaml:"open_paths"`

	// Server bounds connections: timeouts, header size, connection and
	// in-flight request caps (docs/config.md, `server:`).
	Server ServerConfig `yaml:"server"`
	// Limits bounds what a request may carry in tags and metadata.
	Limits RequestLimits `yaml:"limits"`

	Auth       AuthConfig       `yaml:"auth"`
	RateLimits RateLimitsConfig `yaml:"rate_limits"`
	Policy     PolicyConfig     `yaml:"policy"`
	Shadow     *PolicyConfig    `yaml:"shadow"`
	Reward     RewardConfig     `yaml:"reward"`
	// Encoder, optional, overrides the feature encoder contextual policies
	// see (policy.EncoderSpec; default EncoderSpec()). Give the same block
	// as the scenario or dataset a policy was trained on.
	Encoder    *policy.EncoderSpec `yaml:"encoder"`
	Providers  []ProviderConfig    `yaml:"providers"`
	Models     []ModelConfig       `yaml:"models"`
	Tenants    []TenantConfig      `yaml:"tenants"`
	Fallbacks  []FallbackConfig    `yaml:"fallbacks"`
	Retries    RetryConfig         `yaml:"retries"`
	Breaker    BreakerConfig       `yaml:"breaker"`
	Health     HealthConfig        `yaml:"health"`
	Conditions ConditionsConfig    `yaml:"conditions"`
	Feedback   FeedbackConfig      `yaml:"feedback"`
	Promotion  PromotionConfig     `yaml:"promotion"`
	Checkpoint CheckpointConfig    `yaml:"checkpoint"`
	Log        LogConfig           `yaml:"log"`
	Privacy    PrivacyConfig       `yaml:"privacy"`
	AccessLog  AccessLogConfig     `yaml:"access_log"`
	AuditLog   AuditLogConfig      `yaml:"audit_log"`
	// GRPC is the gRPC API (grpcconfig.go); off without grpc.listen.
	GRPC GRPCConfig `yaml:"grpc"`
	// TLS, when set, terminates TLS (and optionally mTLS) on the listener
	// (tls.go).
	TLS *TLSConfig `yaml:"tls"`
	// State shares learned statistics, limits, policies and feedback
	// between replicas (state.go, docs/scale-out.md).
	State StateConfig `yaml:"state"`
}

// PrivacyConfig keys the tenant hash and masks what is logged.
type PrivacyConfig struct {
	// TenantSalt keys the decision log's tenant hash (HMAC-SHA256); keep it
	// secret and stable. TenantSaltEnv names an environment variable that
	// holds it instead (default ROUTELAB_TENANT_SALT). Production mode with
	// a decision log needs one; development mode without one generates a
	// random salt per log directory, kept in <log.dir>/tenant_salt.
	TenantSalt    string `yaml:"tenant_salt"`
	TenantSaltEnv string `yaml:"tenant_salt_env"`
	// Mask configures the detectors run over tags and metadata before they
	// are logged (package mask).
	Mask MaskConfig `yaml:"mask"`
	// MetadataAllowlist, when set, is the only tag/metadata keys logged
	// (the part before "="; a tag without "=" is its own key).
	MetadataAllowlist []string `yaml:"metadata_allowlist"`
}

// MaskConfig selects the masking detectors.
type MaskConfig struct {
	// Disabled turns masking of logged tags and metadata off.
	Disabled bool `yaml:"disabled"`
	// Detectors names the detectors (mask.All when empty): api_key,
	// credential, aws, cloud, card, email, phone, ssn.
	Detectors []string `yaml:"detectors"`
	// Prompts also masks message contents before they leave for an
	// upstream (off by default: it changes what the model sees).
	Prompts bool `yaml:"prompts"`
}

// AccessLogConfig is the per-request access log: one JSON line per
// request (time, id, key, tenant, method, path, status, latency, model).
type AccessLogConfig struct {
	Enabled bool `yaml:"enabled"`
	// Path is the file appended to (JSON lines), "stderr", or "" for the
	// server's own log.
	Path string `yaml:"path"`
}

// AuditLogConfig is the audit log of admin actions (always on): JSON lines
// with identity, source address, action and outcome.
type AuditLogConfig struct {
	// Path is the file appended to (JSON lines), "stderr", or "" for the
	// server's own log.
	Path string `yaml:"path"`
}

// DefaultTenantSaltEnv is where the tenant salt is read from when
// privacy.tenant_salt_env is not set.
const DefaultTenantSaltEnv = "ROUTELAB_TENANT_SALT"

// AuthConfig holds credentials, stored as SHA-256 hex digests only.
type AuthConfig struct {
	Keys []KeyConfig `yaml:"keys"`
	// AdminTokenSHA256 guards /admin/*.
	AdminTokenSHA256 string `yaml:"admin_token_sha256"`
	// TrustTenantHeader makes every key behave as if it had tenant_header:
	// true (a trusted front end names the tenant of each request).
	TrustTenantHeader bool `yaml:"trust_tenant_header"`
	// JWT, when set, also accepts JWT bearer tokens verified against a
	// JWKS file (jwt.go).
	JWT *JWTConfig `yaml:"jwt"`
}

// ServerConfig is the `server:` block. Zero values take the defaults
// fillDefaults gives (see docs/config.md).
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a request's body, from the end of its
	// headers (408 request_timeout when exceeded); streams are not cut by
	// it.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write to the client (a response, or one
	// chunk of a stream): a client that stops reading fails the write,
	// which ends the attempt and frees its provider slot.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers (431 above it).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections caps open client connections; at the cap a new one
	// waits for a place while answers close their connections and idle
	// keep-alive connections are reclaimed (see LimitListener). -1 =
	// unlimited.
	MaxConnections int `yaml:"max_connections"`
	// MaxInFlight caps requests being handled at once on /v1/*; above it
	// requests get 503 server_busy. -1 = unlimited.
	MaxInFlight int `yaml:"max_inflight"`
}

// RequestLimits is the `limits:` block: what one request may carry in
// X-Routelab-Tags and metadata (400 naming the limit above it). Everything
// a decision keeps for delayed feedback is bounded by these.
type RequestLimits struct {
	// MaxTags caps the tags of a request, header tags and metadata pairs
	// together.
	MaxTags int `yaml:"max_tags"`
	// MaxTagBytes caps one tag (a metadata pair counts as key=value).
	MaxTagBytes int `yaml:"max_tag_bytes"`
	// MaxTagsBytes caps all tags of a request together.
	MaxTagsBytes int `yaml:"max_tags_bytes"`
	// MaxArtifactBytes caps the body of POST /admin/policy and
	// /admin/shadow (a policy artifact upload); 0 = DefaultMaxArtifactBytes.
	MaxArtifactBytes int `yaml:"max_artifact_bytes"`
}

// KeyConfig is one API key.
type KeyConfig struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
	Tenant string `yaml:"tenant"`
	// TenantHeader lets this key name the tenant of each request with
	// X-Routelab-Tenant (or metadata.tenant): for a trusted front end
	// serving many tenants. Without it the header is ignored and the
	// tenant is the key's tenant, else the key's name.
	TenantHeader bool         `yaml:"tenant_header"`
	Limit        *LimitConfig `yaml:"rate_limit"`
	// Scopes the key holds (chat, feedback, admin-read, admin-write);
	// empty = chat and feedback (authz.go).
	Scopes []string `yaml:"scopes"`
}

// LimitConfig is a token bucket: RPS tokens per second, Burst capacity.
type LimitConfig struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// RateLimitsConfig sets the default buckets; keys and tenants may override.
type RateLimitsConfig struct {
	// PerKey applies to keys without their own rate_limit; nil = unlimited.
	PerKey *LimitConfig `yaml:"per_key"`
	// PerTenant applies to tenants without their own rate_limit.
	PerTenant *LimitConfig `yaml:"per_tenant"`
}

// PolicyConfig names a registered policy and its parameters (or, in YAML,
// a spec string: "NAME=key:value;..."), or (File) a policy artifact to load (package artifact: from routelab train, neural
// fit, sim --save-policy or a checkpoint). File excludes Name and Params;
// the artifact's encoder, reward and models must match the config's.
type PolicyConfig struct {
	Name   string            `yaml:"name"`
	Params map[string]string `yaml:"params"`
	// Learn, for the shadow block only, says how the shadow learns:
	// "weighted" (default: importance-weighted, from every request),
	// "frozen" or "matched" (route.ShadowLearnMode).
	Learn string `yaml:"learn"`
	// File, instead of Name/Params, loads a policy artifact (routelab
	// train, neural fit, sim --save-policy); its encoder, reward and
	// catalogue must match this config's.
	File string `yaml:"file"`
	// Budget, optional, sets the spend budget of a policy that enforces
	// one (linear-router), replacing the artifact's: per tenant, a mean
	// per_request limit and/or a limit per window, enforced by a dual
	// price updated from the realised cost of completed requests
	// (policy.BudgetSpec). It also applies to a restored checkpoint.
	Budget *policy.BudgetSpec `yaml:"budget"`
}

// UnmarshalYAML also reads a policy block written as a spec string, as
// --policy and POST /admin/policy take it (`policy: "linucb=alpha:0.5"`).
// The mapping form goes through the same decoder, so unknown fields stay
// errors.
func (p *PolicyConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var spec string
	if unmarshal(&spec) == nil { // a scalar
		if spec == "" { // null: no policy block
			return nil
		}
		sp, err := policy.ParseSpec(spec)
		if err != nil {
			return err
		}
		*p = PolicyConfig{Name: sp.Name}
		if len(sp.Params) > 0 {
			p.Params = map[string]string(sp.Params)
		}
		return nil
	}
	type plain PolicyConfig
	return unmarshal((*plain)(p))
}

// CheckpointConfig is the `checkpoint:` block: where and how often the
// serving (and shadow) policy is saved as a policy artifact, so that a
// restart resumes what was learned.
//
//	checkpoint:
//	  dir: /var/lib/routelab/policies   # empty = no checkpoints
//	  every: 1m                         # 0 = 1m; also written on drain
//
// At start-up the policies are restored from DIR/serving.json and
// DIR/shadow.json when present; a checkpoint that cannot be read, or that
// was written for another encoder, reward or catalogue, is reported as a
// warning, renamed to NAME.rejected-UNIXTIME (so that the next checkpoint
// does not overwrite it) and the configured policy starts fresh.
type CheckpointConfig struct {
	Dir   string        `yaml:"dir"`
	Every time.Duration `yaml:"every"`
}

// RewardConfig is the `reward:` block: decision.RewardSpec, the schema the
// simulator's scenarios share; absent fields take decision.DefaultReward.
type RewardConfig = decision.RewardSpec

// ProviderConfig is one upstream.
type ProviderConfig struct {
	Name string `yaml:"name"`
	// Type is "openai" (any OpenAI-compatible API), "anthropic" or "sim".
	Type    string `yaml:"type"`
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the upstream key.
	APIKeyEnv string            `yaml:"api_key_env"`
	Headers   map[string]string `yaml:"headers"`
	// Timeout bounds one attempt (the request deadline may cut it shorter).
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrency bounds in-flight calls; 0 = unlimited.
	MaxConcurrency int `yaml:"max_concurrency"`
	// QueueTimeout is how long a call waits for a concurrency slot.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// HealthCheck turns active probing of this provider on or off (default on).
	HealthCheck *bool `yaml:"health_check"`
	// Sim only.
	Seed      uint64  `yaml:"seed"`
	TimeScale float64 `yaml:"time_scale"`
	// Anthropic only.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
}

// ModelConfig is one catalogue entry (a routing arm).
type ModelConfig struct {
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	// Upstream is the provider's name for the model; "" means ID.
	Upstream      string  `yaml:"upstream"`
	PriceIn       float64 `yaml:"price_in"`
	PriceOut      float64 `yaml:"price_out"`
	ContextWindow int     `yaml:"context_window"`
	// Quality and LatencyMS are priors for the profile library.
	Quality   float64 `yaml:"quality"`
	LatencyMS float64 `yaml:"latency_ms"`
	// Sim describes the model's behaviour on a sim provider.
	Sim *SimModelConfig `yaml:"sim"`
	// Cascade, instead of a provider, makes the model an agreement
	// cascade over other catalogue models: ask every agree model at once;
	// when their answers share one decision.AnswerKey, serve the first
	// one's; otherwise ask escalate and serve its answer. Its logged cost
	// is what was asked (each member priced by its own entry); its
	// price_in/price_out are only the catalogue's expected price (default:
	// all members' summed) and its context_window defaults to the
	// smallest of its members' (catalogueTerms).
	Cascade *decision.Cascade `yaml:"cascade"`
}

// SimModelConfig mirrors provider.SimModel.
type SimModelConfig struct {
	TTFTMS       float64            `yaml:"ttft_ms"`
	TTFTSigma    float64            `yaml:"ttft_sigma"`
	TokensPerSec float64            `yaml:"tokens_per_sec"`
	OutputTokens int                `yaml:"output_tokens"`
	ErrorRate    float64            `yaml:"error_rate"`
	RateLimitRPS float64            `yaml:"rate_limit_rps"`
	Quality      map[string]float64 `yaml:"quality"`
}

// TenantConfig restricts and limits one tenant.
type TenantConfig struct {
	Name string `yaml:"name"`
	// Models, when set, is the tenant's allowlist.
	Models []string     `yaml:"models"`
	Limit  *LimitConfig `yaml:"rate_limit"`
}

// FallbackConfig is an ordered model group with its fallback conditions.
type FallbackConfig struct {
	Name   string   `yaml:"name"`
	Models []string `yaml:"models"`
	// When lists conditions: status ones ("status == 429", "status == 5xx",
	// "status == timeout", "status == error") move a failed request on to the
	// next model; profile ones ("error_rate > 0.05", "latency > 3000ms",
	// "ttft > 1s") take a model out of rotation while they hold.
	When []string `yaml:"when"`
}

// RetryConfig is the same-model retry policy.
type RetryConfig struct {
	// Max retries of one model per request; 0 = no retries.
	Max            int           `yaml:"max"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// Jitter is the randomisation factor in [0,1].
	Jitter float64 `yaml:"jitter"`
	// BudgetRatio caps retries at this fraction of requests; BudgetMin
	// retries per second are always allowed.
	BudgetRatio float64 `yaml:"budget_ratio"`
	BudgetMin   float64 `yaml:"budget_min_per_sec"`
}

// BreakerConfig configures one circuit breaker per model.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker; 0 = 5.
	ConsecutiveFailures uint32 `yaml:"consecutive_failures"`
	// FailureRatio over MinRequests in Interval also opens it.
	FailureRatio float64       `yaml:"failure_ratio"`
	MinRequests  uint32        `yaml:"min_requests"`
	Interval     time.Duration `yaml:"interval"`
	// OpenTimeout is how long it stays open before half-open probes.
	OpenTimeout      time.Duration `yaml:"open_timeout"`
	HalfOpenRequests uint32        `yaml:"half_open_requests"`
}

// HealthConfig configures active health checks.
type HealthConfig struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// UnhealthyAfter consecutive failed probes marks a provider down.
	UnhealthyAfter int `yaml:"unhealthy_after"`
}

// ConditionsConfig tunes profile conditions.
type ConditionsConfig struct {
	// Every is how often profile conditions are evaluated.
	Every time.Duration `yaml:"every"`
	// Cooldown is how long a model stays out once a condition holds;
	// ProbeRequests are then let through before it is judged again.
	Cooldown      time.Duration `yaml:"cooldown"`
	ProbeRequests int64         `yaml:"probe_requests"`
}

// DefaultFeedbackMaxBytes is feedback.max_bytes' default: about 200k
// decisions of a task-only encoder, 10–20k of a text-feature one.
const DefaultFeedbackMaxBytes = 64 << 20

// FeedbackConfig bounds the decisions kept for delayed rewards.
type FeedbackConfig struct {
	TTL        time.Duration `yaml:"ttl"`
	MaxEntries int           `yaml:"max_entries"`
	// MaxBytes bounds the memory of the kept decisions too (see
	// route.PendingOpts.MaxBytes): default 64 MiB, -1 = no byte bound.
	MaxBytes int64 `yaml:"max_bytes"`
	// DeferUpdates (default true) holds the policy update of a routed
	// request whose answer quality is unknown until its feedback arrives,
	// or ttl passes (then it learns the immediate reward), so that each
	// request updates the policy exactly once.
	DeferUpdates *bool `yaml:"defer_updates"`
}

// deferUpdates reads DeferUpdates with its default.
func (f FeedbackConfig) deferUpdates() bool { return f.DeferUpdates == nil || *f.DeferUpdates }

// LogConfig says where decisions are logged (the serve command opens it).
type LogConfig struct {
	// Dir is the decision log's root directory; "" disables logging.
	Dir string `yaml:"dir"`
	// QueueSize bounds the writer's queue (rows dropped when full).
	QueueSize int `yaml:"queue_size"`
	// RotateRows / RotateEvery close a file after so many rows or so long.
	RotateRows  int           `yaml:"rotate_rows"`
	RotateEvery time.Duration `yaml:"rotate_every"`
	// FlushInterval is the durability window: rows are appended to the
	// write-ahead segment and fsynced at least this often, so a crash
	// loses at most about this much (default 1s).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// RowGroupRows bounds the rows an open file holds in memory before
	// streaming them to disk as a Parquet row group (default 8192).
	RowGroupRows int `yaml:"row_group_rows"`
	// MaxMemoryRows bounds the rows the log holds in memory, queue and
	// row groups together (default 24,576; decisionlog.WriterOpts).
	MaxMemoryRows int `yaml:"max_memory_rows"`
	// Ship uploads finished log files to an object store (config_logship.go).
	Ship LogShipConfig `yaml:"ship"`
}

// LoadConfig reads path ("" = the embedded default) and returns a
// validated configuration with defaults filled in.
func LoadConfig(path string) (*Config, error) {
	data := defaultYAML
	name := "embedded default config"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		data, name = b, path
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

// ParseConfig decodes YAML strictly (unknown fields are errors), fills
// defaults and validates.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty config")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s", namePaths(data, te))
		}
		return nil, err
	}
	c.fillDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) fillDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Mode == "" {
		c.Mode = "development"
	}
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	def(&c.RequestTimeout, 120*time.Second)
	c.Server.fillDefaults()
	c.Limits.fillDefaults()
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.Aliases == nil {
		c.Aliases = []string{"auto"}
	}
	if c.OpenPaths == nil {
		c.OpenPaths = []string{"/healthz", "/readyz", "/metrics"}
	}
	if c.Policy.Name == "" && c.Policy.File == "" {
		c.Policy.Name = "thompson"
	}
	def(&c.Checkpoint.Every, time.Minute)
	for i := range c.Providers {
		p := &c.Providers[i]
		def(&p.Timeout, 60*time.Second)
		def(&p.QueueTimeout, time.Second)
	}
	def(&c.Retries.InitialBackoff, 50*time.Millisecond)
	def(&c.Retries.MaxBackoff, 2*time.Second)
	if c.Retries.Jitter == 0 {
		c.Retries.Jitter = 0.5
	}
	if c.Retries.BudgetRatio == 0 {
		c.Retries.BudgetRatio = 0.2
	}
	if c.Retries.BudgetMin == 0 {
		c.Retries.BudgetMin = 10
	}
	b := &c.Breaker
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 5
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = 0.5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	def(&b.Interval, 10*time.Second)
	def(&b.OpenTimeout, 10*time.Second)
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = 3
	}
	def(&c.Health.Interval, 10*time.Second)
	def(&c.Health.Timeout, 2*time.Second)
	if c.Health.UnhealthyAfter == 0 {
		c.Health.UnhealthyAfter = 2
	}
	def(&c.Conditions.Every, time.Second)
	def(&c.Conditions.Cooldown, 15*time.Second)
	if c.Conditions.ProbeRequests == 0 {
		c.Conditions.ProbeRequests = 20
	}
	def(&c.Feedback.TTL, 15*time.Minute)
	if c.Feedback.MaxBytes == 0 {
		c.Feedback.MaxBytes = DefaultFeedbackMaxBytes
	}
	if c.Feedback.MaxEntries == 0 {
		c.Feedback.MaxEntries = 100_000
	}
	c.Promotion.fillDefaults()
}

var (
	hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@-]*$`)
	// validModel also takes '+', '>' and parentheses, so a benchmark
	// table's cascade column ("cascade(a+b>c)", datasets.Cascade) can be
	// a catalogue id and a router trained on the table served as is.
	validModel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+>()-]*$`)
)

// Validate reports the first problem, naming its field path. Each config
// section has its own validate function, run in this order.
func (c *Config) Validate() error {
	for _, v := range []func() error{
		c.validateServer, c.validateLimits, c.validateAuth, c.validateRateLimits, c.validateReward,
		c.validateProviders, c.validateModels, c.validateAliases, c.validateTenants, c.validateFallbacks,
		c.validateRetries, c.validateBreaker, c.validateHealth, c.validateConditions,
		c.validateFeedback, c.Promotion.validate, c.validateLog, c.validateEncoder, c.validatePolicies,
		c.validateShadowLearn, c.validatePrivacy, c.GRPC.validate, c.validateTLS, c.validateJWT, c.validateState,
	} {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}

// nonNegative reports the first negative duration, naming it.
func nonNegative(ds ...namedDuration) error {
	for _, d := range ds {
		if d.v < 0 {
			return fmt.Errorf("%s: %v must be positive", d.name, d.v)
		}
	}
	return nil
}

type namedDuration struct {
	name string
	v    time.Duration
}

// validateServer checks mode, max_body_bytes and the server timeouts.
func (c *Config) validateServer() error {
	if c.Mode != "development" && c.Mode != "production" {
		return fmt.Errorf("mode: %q is not development or production", c.Mode)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max_body_bytes: %d must be > 0", c.MaxBodyBytes)
	}
	return nonNegative(namedDuration{"request_timeout", c.RequestTimeout}, namedDuration{"shutdown_timeout", c.ShutdownTimeout})
}

// Defaults of the server: and limits: blocks.
const (
	defReadHeaderTimeout = 10 * time.Second
	defReadTimeout       = 30 * time.Second
	defWriteTimeout      = 30 * time.Second
	defIdleTimeout       = 120 * time.Second
	defMaxHeaderBytes    = 64 << 10
	defMaxConnections    = 1024
	defMaxInFlight       = 1024
	defMaxTags           = 16
	defMaxTagBytes       = 128
	defMaxTagsBytes      = 1024
)

func (sc *ServerConfig) fillDefaults() {
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&sc.ReadHeaderTimeout, defReadHeaderTimeout}, {&sc.ReadTimeout, defReadTimeout},
		{&sc.WriteTimeout, defWriteTimeout}, {&sc.IdleTimeout, defIdleTimeout}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *int
		v int
	}{{&sc.MaxHeaderBytes, defMaxHeaderBytes},
		{&sc.MaxConnections, defMaxConnections}, {&sc.MaxInFlight, defMaxInFlight}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

func (l *RequestLimits) fillDefaults() {
	for _, d := range []struct {
		p *int
		v int
	}{{&l.MaxTags, defMaxTags}, {&l.MaxTagBytes, defMaxTagBytes}, {&l.MaxTagsBytes, defMaxTagsBytes}, {&l.MaxArtifactBytes, DefaultMaxArtifactBytes}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

// validateLimits checks the server: and limits: blocks. Zero values are
// accepted (New fills the defaults of a config built in code).
func (c *Config) validateLimits() error {
	sc := &c.Server
	if err := nonNegative(namedDuration{"server.read_header_timeout", sc.ReadHeaderTimeout}, namedDuration{"server.read_timeout", sc.ReadTimeout},
		namedDuration{"server.write_timeout", sc.WriteTimeout}, namedDuration{"server.idle_timeout", sc.IdleTimeout}); err != nil {
		return err
	}
	if sc.MaxHeaderBytes < 0 {
		return fmt.Errorf("server.max_header_bytes: %d must be > 0", sc.MaxHeaderBytes)
	}
	if sc.MaxConnections < -1 {
		return fmt.Errorf("server.max_connections: %d must be > 0, or -1 for unlimited", sc.MaxConnections)
	}
	if sc.MaxInFlight < -1 {
		return fmt.Errorf("server.max_inflight: %d must be > 0, or -1 for unlimited", sc.MaxInFlight)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"limits.max_tags", c.Limits.MaxTags}, {"limits.max_tag_bytes", c.Limits.MaxTagBytes}, {"limits.max_tags_bytes", c.Limits.MaxTagsBytes}, {"limits.max_artifact_bytes", c.Limits.MaxArtifactBytes}} {
		if v.v < 0 {
			return fmt.Errorf("%s: %d must be > 0", v.name, v.v)
		}
	}
	return nil
}

// validateAuth checks auth: the keys and the admin token.
func (c *Config) validateAuth() error {
	if c.Mode == "production" {
		if len(c.Auth.Keys) == 0 && c.Auth.JWT == nil {
			return fmt.Errorf("auth.keys: production mode needs at least one API key (or auth.jwt)")
		}
		if c.Auth.AdminTokenSHA256 == "" {
			return fmt.Errorf("auth.admin_token_sha256: production mode needs an admin token")
		}
	}
	if t := c.Auth.AdminTokenSHA256; t != "" && !hexDigest.MatchString(strings.ToLower(t)) {
		return fmt.Errorf("auth.admin_token_sha256: must be 64 hex digits (sha256 of the token)")
	}
	seenKey := map[string]bool{}
	for i, k := range c.Auth.Keys {
		p := fmt.Sprintf("auth.keys[%d]", i)
		if k.Name == "" {
			return fmt.Errorf("%s.name: required", p)
		}
		h := strings.ToLower(k.SHA256)
		if !hexDigest.MatchString(h) {
			return fmt.Errorf("%s.sha256: must be 64 hex digits (printf %%s KEY | sha256sum)", p)
		}
		if seenKey[h] {
			return fmt.Errorf("%s.sha256: duplicate key", p)
		}
		seenKey[h] = true
		if err := k.Limit.validate(p + ".rate_limit"); err != nil {
			return err
		}
		if _, err := parseScopes(k.Scopes); err != nil {
			return fmt.Errorf("%s.scopes: %w", p, err)
		}
	}
	if len(c.Auth.Keys) > 0 && c.Auth.AdminTokenSHA256 == "" {
		// Without a token /admin/* would be open to anyone while /v1 asks
		// for a key: refuse rather than expose policy swaps and promotion.
		return fmt.Errorf("auth.admin_token_sha256: required when auth.keys are configured (otherwise /admin/* is open to anyone); set it to the sha256 of an admin token")
	}
	return nil
}

// validateRateLimits checks rate_limits.
func (c *Config) validateRateLimits() error {
	if err := c.RateLimits.PerKey.validate("rate_limits.per_key"); err != nil {
		return err
	}
	return c.RateLimits.PerTenant.validate("rate_limits.per_tenant")
}

// validateReward checks reward.
func (c *Config) validateReward() error {
	if _, err := c.Reward.Reward(); err != nil {
		return fmt.Errorf("reward: %w", err)
	}
	return nil
}

// validateEncoder checks encoder (or the default spec over TaskNames).
func (c *Config) validateEncoder() error {
	return c.EncoderSpec().Validate()
}

// validateProviders checks providers.
func (c *Config) validateProviders() error {
	if len(c.Providers) == 0 {
		return fmt.Errorf("providers: at least one provider is required")
	}
	seen := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		path := fmt.Sprintf("providers[%d]", i)
		if !validName.MatchString(p.Name) {
			return fmt.Errorf("%s.name: %q must be a non-empty name of letters, digits and ._:/@-", path, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("%s.name: duplicate provider %q", path, p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case "openai":
			if p.BaseURL == "" {
				return fmt.Errorf("%s.base_url: required for type openai", path)
			}
		case "anthropic", "sim":
		default:
			return fmt.Errorf("%s.type: %q is not openai, anthropic or sim", path, p.Type)
		}
		if p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
			return fmt.Errorf("%s.base_url: %q must start with http:// or https://", path, p.BaseURL)
		}
		if p.APIKeyEnv != "" && os.Getenv(p.APIKeyEnv) == "" && c.Mode == "production" {
			return fmt.Errorf("%s.api_key_env: environment variable %s is empty", path, p.APIKeyEnv)
		}
		if p.Timeout < 0 || p.QueueTimeout < 0 {
			return fmt.Errorf("%s.timeout/queue_timeout: must be positive", path)
		}
		if p.MaxConcurrency < 0 {
			return fmt.Errorf("%s.max_concurrency: %d must be >= 0", path, p.MaxConcurrency)
		}
		if p.TimeScale < 0 || math.IsNaN(p.TimeScale) {
			return fmt.Errorf("%s.time_scale: %v must be >= 0", path, p.TimeScale)
		}
	}
	return nil
}

// validateModels checks models against the (validated) providers and
// aliases.
func (c *Config) validateModels() error {
	if len(c.Models) == 0 {
		return fmt.Errorf("models: at least one model is required")
	}
	provs := make(map[string]*ProviderConfig, len(c.Providers))
	for i := range c.Providers {
		provs[c.Providers[i].Name] = &c.Providers[i]
	}
	models := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%d]", i)
		if !validModel.MatchString(m.ID) {
			return fmt.Errorf("%s.id: %q must be a non-empty name of letters, digits and ._:/@-+>() starting with a letter or digit", path, m.ID)
		}
		if models[m.ID] {
			return fmt.Errorf("%s.id: duplicate model %q", path, m.ID)
		}
		models[m.ID] = true
		for _, a := range c.Aliases {
			if a == m.ID {
				return fmt.Errorf("%s.id: %q is also a routing alias", path, m.ID)
			}
		}
		p := provs[m.Provider]
		if m.Cascade != nil {
			if err := c.validateCascade(path, m); err != nil {
				return err
			}
		} else if p == nil {
			return fmt.Errorf("%s.provider: %q is not a defined provider", path, m.Provider)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"price_in", m.PriceIn}, {"price_out", m.PriceOut}, {"latency_ms", m.LatencyMS}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				return fmt.Errorf("%s.%s: %v must be a finite number >= 0", path, f.name, f.v)
			}
		}
		if m.Quality < 0 || m.Quality > 1 || math.IsNaN(m.Quality) {
			return fmt.Errorf("%s.quality: %v outside [0,1]", path, m.Quality)
		}
		if m.ContextWindow < 0 {
			return fmt.Errorf("%s.context_window: %d must be >= 0", path, m.ContextWindow)
		}
		if m.Cascade == nil {
			if err := m.validateSim(path, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateCascade checks a cascade model: no provider of its own, members
// that are catalogue models served by a provider (not cascades).
func (c *Config) validateCascade(path string, m *ModelConfig) error {
	if m.Provider != "" || m.Upstream != "" || m.Sim != nil {
		return fmt.Errorf("%s: a cascade model has no provider, upstream or sim settings (its members do)", path)
	}
	if err := m.Cascade.Validate(); err != nil {
		return fmt.Errorf("%s.cascade: %w", path, err)
	}
	for _, id := range m.Cascade.Members() {
		switch mm := c.model(id); {
		case mm == nil:
			return fmt.Errorf("%s.cascade: %q is not a model of the catalogue", path, id)
		case mm.Cascade != nil:
			return fmt.Errorf("%s.cascade: %q is itself a cascade; members must be provider models", path, id)
		}
	}
	return nil
}

// model is the catalogue model id (nil when there is none).
func (c *Config) model(id string) *ModelConfig {
	if i := slices.IndexFunc(c.Models, func(x ModelConfig) bool { return x.ID == id }); i >= 0 {
		return &c.Models[i]
	}
	return nil
}

// catalogueTerms are the prices and context window of m's catalogue arm:
// m's own, except for a cascade without them: its prices default to the
// sum of all its members' (the most it can cost; a policy that prices arms
// before calling them, such as weighted, must not see a cascade as free)
// and its context window to the smallest of its members' (every member
// must hold the prompt). The cost logged for a cascade is always what was
// asked.
func (c *Config) catalogueTerms(m *ModelConfig) (priceIn, priceOut float64, window int) {
	priceIn, priceOut, window = m.PriceIn, m.PriceOut, m.ContextWindow
	if m.Cascade == nil {
		return priceIn, priceOut, window
	}
	var sumIn, sumOut float64
	minWindow := 0
	for _, id := range m.Cascade.Members() {
		mm := c.model(id)
		if mm == nil {
			continue // validated: not reached
		}
		sumIn += mm.PriceIn
		sumOut += mm.PriceOut
		if w := mm.ContextWindow; w > 0 && (minWindow == 0 || w < minWindow) {
			minWindow = w
		}
	}
	if priceIn == 0 && priceOut == 0 {
		priceIn, priceOut = sumIn, sumOut
	}
	if window == 0 {
		window = minWindow
	}
	return priceIn, priceOut, window
}

// validateSim checks a model's sim settings, which only models on a sim
// provider take (and need).
func (m *ModelConfig) validateSim(path string, p *ProviderConfig) error {
	if p.Type != "sim" {
		if m.Sim != nil {
			return fmt.Errorf("%s.sim: only models on a sim provider take sim settings", path)
		}
		return nil
	}
	if m.Sim == nil {
		return fmt.Errorf("%s.sim: required for a model on sim provider %q", path, p.Name)
	}
	s := m.Sim
	if s.ErrorRate < 0 || s.ErrorRate > 1 || math.IsNaN(s.ErrorRate) {
		return fmt.Errorf("%s.sim.error_rate: %v outside [0,1]", path, s.ErrorRate)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"ttft_ms", s.TTFTMS}, {"ttft_sigma", s.TTFTSigma}, {"tokens_per_sec", s.TokensPerSec}, {"rate_limit_rps", s.RateLimitRPS}, {"output_tokens", float64(s.OutputTokens)}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s.sim.%s: %v must be a finite number >= 0", path, f.name, f.v)
		}
	}
	for task, q := range s.Quality {
		if q < 0 || q > 1 || math.IsNaN(q) {
			return fmt.Errorf("%s.sim.quality[%q]: %v outside [0,1]", path, task, q)
		}
	}
	return nil
}

// validateAliases checks aliases.
func (c *Config) validateAliases() error {
	for i, a := range c.Aliases {
		if a == "" {
			return fmt.Errorf("aliases[%d]: empty alias", i)
		}
	}
	return nil
}

// catalogued returns the set of model ids.
func (c *Config) catalogued() map[string]bool {
	models := make(map[string]bool, len(c.Models))
	for i := range c.Models {
		models[c.Models[i].ID] = true
	}
	return models
}

// validateTenants checks tenants against the catalogue.
func (c *Config) validateTenants() error {
	models := c.catalogued()
	seenTenant := map[string]bool{}
	for i, t := range c.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		if t.Name == "" {
			return fmt.Errorf("%s.name: required", path)
		}
		if seenTenant[t.Name] {
			return fmt.Errorf("%s.name: duplicate tenant %q", path, t.Name)
		}
		seenTenant[t.Name] = true
		for j, m := range t.Models {
			if !models[m] {
				return fmt.Errorf("%s.models[%d]: %q is not a catalogued model", path, j, m)
			}
		}
		if err := t.Limit.validate(path + ".rate_limit"); err != nil {
			return err
		}
	}
	return nil
}

// validateFallbacks checks fallbacks against the catalogue.
func (c *Config) validateFallbacks() error {
	models := c.catalogued()
	inGroup := map[string]string{}
	for i, g := range c.Fallbacks {
		path := fmt.Sprintf("fallbacks[%d]", i)
		if len(g.Models) == 0 {
			return fmt.Errorf("%s.models: at least one model", path)
		}
		for j, m := range g.Models {
			if !models[m] {
				return fmt.Errorf("%s.models[%d]: %q is not a catalogued model", path, j, m)
			}
			if other, dup := inGroup[m]; dup {
				return fmt.Errorf("%s.models[%d]: %q is already in fallback group %s", path, j, m, other)
			}
			inGroup[m] = fmt.Sprintf("%d (%s)", i, g.Name)
		}
		for j, w := range g.When {
			if _, err := ParseCondition(w); err != nil {
				return fmt.Errorf("%s.when[%d]: %w", path, j, err)
			}
		}
	}
	return nil
}

// validateRetries checks retries.
func (c *Config) validateRetries() error {
	r := c.Retries
	if err := nonNegative(namedDuration{"retries.initial_backoff", r.InitialBackoff}, namedDuration{"retries.max_backoff", r.MaxBackoff}); err != nil {
		return err
	}
	if r.Max < 0 || r.Max > 10 {
		return fmt.Errorf("retries.max: %d outside [0,10]", r.Max)
	}
	if r.Jitter < 0 || r.Jitter > 1 {
		return fmt.Errorf("retries.jitter: %v outside [0,1]", r.Jitter)
	}
	if r.BudgetRatio < 0 || r.BudgetMin < 0 {
		return fmt.Errorf("retries.budget_ratio/budget_min_per_sec: must be >= 0")
	}
	return nil
}

// validateBreaker checks breaker.
func (c *Config) validateBreaker() error {
	if err := nonNegative(namedDuration{"breaker.interval", c.Breaker.Interval}, namedDuration{"breaker.open_timeout", c.Breaker.OpenTimeout}); err != nil {
		return err
	}
	if c.Breaker.FailureRatio <= 0 || c.Breaker.FailureRatio > 1 {
		return fmt.Errorf("breaker.failure_ratio: %v outside (0,1]", c.Breaker.FailureRatio)
	}
	return nil
}

// validateHealth checks health.
func (c *Config) validateHealth() error {
	if err := nonNegative(namedDuration{"health.interval", c.Health.Interval}, namedDuration{"health.timeout", c.Health.Timeout}); err != nil {
		return err
	}
	if c.Health.UnhealthyAfter < 0 {
		return fmt.Errorf("health.unhealthy_after: %d must be >= 1", c.Health.UnhealthyAfter)
	}
	return nil
}

// validateConditions checks conditions.
func (c *Config) validateConditions() error {
	if err := nonNegative(namedDuration{"conditions.every", c.Conditions.Every}, namedDuration{"conditions.cooldown", c.Conditions.Cooldown}); err != nil {
		return err
	}
	if c.Conditions.ProbeRequests < 0 {
		return fmt.Errorf("conditions.probe_requests: %d must be >= 1", c.Conditions.ProbeRequests)
	}
	return nil
}

// validateFeedback checks feedback.
func (c *Config) validateFeedback() error {
	if err := nonNegative(namedDuration{"feedback.ttl", c.Feedback.TTL}); err != nil {
		return err
	}
	if c.Feedback.MaxBytes < -1 {
		return fmt.Errorf("feedback.max_bytes: %d must be > 0, or -1 for no byte bound", c.Feedback.MaxBytes)
	}
	if c.Feedback.MaxEntries < 0 {
		return fmt.Errorf("feedback.max_entries: %d must be >= 0", c.Feedback.MaxEntries)
	}
	return nil
}

// validatePolicies checks policy, shadow and checkpoint: a policy is a
// name or a file, not both. Whether the file is a valid artifact for this
// config is checked by New, which loads it.
func (c *Config) validatePolicies() error {
	for _, x := range []struct {
		path string
		pc   *PolicyConfig
	}{{"policy", &c.Policy}, {"shadow", c.Shadow}} {
		if x.pc == nil {
			continue
		}
		if x.pc.Budget != nil {
			if err := x.pc.Budget.Validate(); err != nil {
				return fmt.Errorf("%s.%w", x.path, err)
			}
		}
		if x.pc.File == "" {
			continue
		}
		if x.pc.Name != "" || len(x.pc.Params) > 0 {
			return fmt.Errorf("%s: give file (%s) or name and params (%q), not both", x.path, x.pc.File, x.pc.Name)
		}
	}
	if c.Checkpoint.Every < 0 {
		return fmt.Errorf("checkpoint.every: %v must be positive", c.Checkpoint.Every)
	}
	return nil
}

// validateLog checks log.
func (c *Config) validateLog() error {
	if c.Log.QueueSize < 0 || c.Log.RotateRows < 0 || c.Log.RotateEvery < 0 || c.Log.FlushInterval < 0 || c.Log.RowGroupRows < 0 {
		return fmt.Errorf("log: queue_size, rotate_rows, rotate_every, flush_interval and row_group_rows must be >= 0")
	}
	if err := c.Log.validateMemory(); err != nil {
		return err
	}
	return c.Log.validateShip()
}

func (l *LimitConfig) validate(path string) error {
	if l == nil {
		return nil
	}
	if l.RPS <= 0 || math.IsNaN(l.RPS) || math.IsInf(l.RPS, 0) {
		return fmt.Errorf("%s.rps: %v must be > 0", path, l.RPS)
	}
	if l.Burst < 0 {
		return fmt.Errorf("%s.burst: %d must be >= 0", path, l.Burst)
	}
	return nil
}

// EncoderSpec is the spec of the gateway's feature encoder: the config's
// `encoder:` block, or policy.DefaultEncoderSpec over the tasks GuessTask
// produces (TaskNames).
func (c *Config) EncoderSpec() policy.EncoderSpec {
	if c.Encoder != nil {
		return c.Encoder.Clone()
	}
	return policy.DefaultEncoderSpec(TaskNames())
}

// HashKey returns the lowercase hex SHA-256 of key, the form the config
// stores API keys and the admin token in.
func HashKey(key string) string {
	h := sha256Sum(key)
	return hex.EncodeToString(h[:])
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// namePaths rewrites "line N: ..." decoding errors as "PATH (line N): ...",
// so that a type error names the field like the validation errors do.
func namePaths(data []byte, te *yaml.TypeError) string {
	var root yaml.Node
	paths := map[int]string{}
	if yaml.Unmarshal(data, &root) == nil {
		walkPaths(&root, "", paths)
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = e
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			if p, ok := paths[n]; ok {
				msgs[i] = p + " (line " + m[1] + "): " + e[len(m[0]):]
			}
		}
	}
	return "config: " + strings.Join(msgs, "; ")
}

func walkPaths(n *yaml.Node, path string, out map[int]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkPaths(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, seen := out[k.Line]; !seen {
				out[k.Line] = p
			}
			walkPaths(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, seen := out[c.Line]; !seen || c.Kind != yaml.ScalarNode {
				if c.Kind == yaml.ScalarNode {
					out[c.Line] = p
				}
			}
			walkPaths(c, p, out)
		}
	}
}

// validatePrivacy checks privacy: the masking detectors and, in
// production mode with a decision log, that a tenant salt is configured.
func (c *Config) validatePrivacy() error {
	if _, err := mask.New(mask.Opts{Detectors: c.Privacy.Mask.Detectors}); err != nil {
		return fmt.Errorf("privacy.mask.detectors: %w", err)
	}
	for i, k := range c.Privacy.MetadataAllowlist {
		if k == "" {
			return fmt.Errorf("privacy.metadata_allowlist[%d]: empty key", i)
		}
	}
	if c.Mode == "production" && c.Log.Dir != "" && c.configuredSalt() == "" {
		return fmt.Errorf("privacy.tenant_salt: production mode needs a secret to key the tenant hash (set privacy.tenant_salt or the %s environment variable)", c.saltEnv())
	}
	return nil
}

func (c *Config) saltEnv() string {
	if c.Privacy.TenantSaltEnv != "" {
		return c.Privacy.TenantSaltEnv
	}
	return DefaultTenantSaltEnv
}

func (c *Config) configuredSalt() string {
	if c.Privacy.TenantSalt != "" {
		return c.Privacy.TenantSalt
	}
	return os.Getenv(c.saltEnv())
}

// TenantSalt returns the secret that keys the decision log's tenant hash:
// privacy.tenant_salt, else the privacy.tenant_salt_env variable, else (a
// development fallback) the salt kept in <log.dir>/tenant_salt, created
// with 32 random bytes on first use so hashes stay stable across
// restarts. Production mode never reaches the fallback (Validate).
func (c *Config) TenantSalt() (string, error) {
	if s := c.configuredSalt(); s != "" {
		return s, nil
	}
	if c.Log.Dir == "" {
		return "", nil
	}
	path := filepath.Join(c.Log.Dir, "tenant_salt")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("tenant salt %s: empty file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("tenant salt: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("tenant salt: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(c.Log.Dir, 0o755); err != nil {
		return "", fmt.Errorf("tenant salt: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process won the race
		return c.TenantSalt()
	}
	if err != nil {
		return "", fmt.Errorf("tenant salt: %w", err)
	}
	_, werr := f.WriteString(s + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return "", fmt.Errorf("tenant salt %s: %w", path, err)
	}
	return s, nil
}
