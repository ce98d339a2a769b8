package gateway

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// StateConfig is what replicas of the gateway share (docs/scale-out.md).
// The zero value shares nothing: every process keeps its own state.
type StateConfig struct {
	// Redis, when set, shares learned policy statistics, rate-limit
	// buckets, the serving/shadow policy and promotions, and pending
	// feedback between every gateway with the same redis.prefix.
	Redis *RedisConfig `yaml:"redis"`
}

// RedisConfig connects the gateway to the Redis its replicas share.
type RedisConfig struct {
	// Addr is host:port (required).
	Addr string `yaml:"addr"`
	// Password, optional; PasswordEnv names an environment variable that
	// holds it instead (preferred: the config file then holds no secret).
	Password    string `yaml:"password"`
	PasswordEnv string `yaml:"password_env"`
	// DB is the Redis database number (default 0).
	DB int `yaml:"db"`
	// Prefix starts every key (default "routelab:"); the replicas of one
	// deployment share it, other deployments use another.
	Prefix string `yaml:"prefix"`
	// MergeInterval is how often a replica publishes what its policies
	// learned, pulls the merged statistics and the shared policy record,
	// and, while Redis is down, retries it (default 2s).
	MergeInterval time.Duration `yaml:"merge_interval"`
	// Timeout bounds every Redis operation (default 250ms). While Redis is
	// unreachable no request waits on it: the replica serves on local
	// state until a ping, every merge interval, succeeds.
	Timeout time.Duration `yaml:"timeout"`
	// Required makes /readyz answer 503 while Redis is unreachable; by
	// default it answers 200 with "degraded" in its body, so a Redis
	// outage does not take every replica out of the load balancer.
	Required bool `yaml:"required"`
}

func (c *Config) fillStateDefaults() {
	r := c.State.Redis
	if r == nil {
		return
	}
	if r.Prefix == "" {
		r.Prefix = "routelab:"
	}
	if r.MergeInterval == 0 {
		r.MergeInterval = 2 * time.Second
	}
	if r.Timeout == 0 {
		r.Timeout = 250 * time.Millisecond
	}
}

// validateState checks state.redis (filling its defaults first).
func (c *Config) validateState() error {
	r := c.State.Redis
	if r == nil {
		return nil
	}
	c.fillStateDefaults()
	if r.Addr == "" {
		return fmt.Errorf("state.redis.addr: required (host:port)")
	}
	if i := strings.LastIndexByte(r.Addr, ':'); i <= 0 || i == len(r.Addr)-1 {
		return fmt.Errorf("state.redis.addr: %q is not host:port", r.Addr)
	}
	if r.Password != "" && r.PasswordEnv != "" {
		return fmt.Errorf("state.redis: give password or password_env, not both")
	}
	if r.DB < 0 {
		return fmt.Errorf("state.redis.db: %d must be >= 0", r.DB)
	}
	if r.MergeInterval < 10*time.Millisecond {
		return fmt.Errorf("state.redis.merge_interval: %v must be at least 10ms", r.MergeInterval)
	}
	if r.Timeout < 0 {
		return fmt.Errorf("state.redis.timeout: %v must be positive", r.Timeout)
	}
	return nil
}

func (r *RedisConfig) password() string {
	if r.PasswordEnv != "" {
		return os.Getenv(r.PasswordEnv)
	}
	return r.Password
}
