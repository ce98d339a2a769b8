package sharedstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/routelab/routelab/policy"
)

// ErrDown is returned, without a network call, by every operation while
// the client considers Redis unreachable (after a failed operation, until
// a Ping succeeds).
var ErrDown = errors.New("redis unreachable: serving on local state")

// Opts configures New.
type Opts struct {
	// Addr is Redis's host:port.
	Addr     string
	Password string
	DB       int
	// Prefix starts every key (default "routelab:"); replicas that share
	// state use the same prefix, separate deployments different ones.
	Prefix string
	// Timeout bounds every operation (dial, read, write); 0 means 250ms.
	Timeout time.Duration
	// OnChange, optional, is called when Redis goes down or comes back.
	OnChange func(up bool)
}

// Client is a replica's connection to the shared state. Safe for
// concurrent use. While Redis is unreachable every operation returns
// ErrDown at once, so callers fall back to their local state without
// waiting on timeouts; Ping (run periodically by the owner) brings it back.
type Client struct {
	rdb      *redis.Client
	prefix   string
	replica  string
	timeout  time.Duration
	onChange func(bool)
	up       atomic.Bool
	mu       sync.Mutex // serialises OnChange calls
	failures atomic.Uint64
}

// New builds a client; it does not connect (call Ping). The replica id, a
// random 64-bit hex string, names this process in the per-replica
// sequence numbers of the statistics merge.
func New(o Opts) (*Client, error) {
	if o.Addr == "" {
		return nil, fmt.Errorf("redis: addr required")
	}
	if o.Prefix == "" {
		o.Prefix = "routelab:"
	}
	if o.Timeout == 0 {
		o.Timeout = 250 * time.Millisecond
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("redis: replica id: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: o.Addr, Password: o.Password, DB: o.DB,
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		MaxRetries: -1, // the caller decides: a failed call falls back to local state
		// One dial attempt: go-redis would otherwise retry a refused dial
		// five times, 100ms apart, inside every operation while Redis is down.
		DialerRetries: 1,
		PoolSize:      32,
	})
	return &Client{rdb: rdb, prefix: o.Prefix, replica: hex.EncodeToString(id[:]), timeout: o.Timeout, onChange: o.OnChange}, nil
}

// Replica returns this process's replica id.
func (c *Client) Replica() string { return c.replica }

// Prefix returns the key prefix.
func (c *Client) Prefix() string { return c.prefix }

// Up reports whether the last operation reached Redis.
func (c *Client) Up() bool { return c.up.Load() }

// Failures counts operations that failed to reach Redis.
func (c *Client) Failures() uint64 { return c.failures.Load() }

// Close closes the connection pool.
func (c *Client) Close() error { return c.rdb.Close() }

func (c *Client) set(up bool) {
	if c.up.Load() == up {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up.Swap(up) != up && c.onChange != nil {
		c.onChange(up)
	}
}

// Ping checks Redis and updates Up.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		c.failures.Add(1)
		c.set(false)
		return fmt.Errorf("redis ping: %w", err)
	}
	c.set(true)
	return nil
}

// do runs f when Redis is up, with the operation timeout, and marks Redis
// down when f fails to reach it (redis.Nil and script errors are answers,
// not failures).
func (c *Client) do(ctx context.Context, what string, f func(ctx context.Context) error) error {
	if !c.up.Load() {
		return ErrDown
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := f(ctx)
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return fmt.Errorf("redis %s: %w", what, err)
	}
	c.failures.Add(1)
	c.set(false)
	return fmt.Errorf("redis %s: %w", what, err)
}

func (c *Client) key(parts ...string) string {
	k := c.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// Secret returns the deployment's shared secret named name (32 random
// bytes, created by the first replica that asks), so that what one replica
// signs — request ids bound to their credential — another verifies.
func (c *Client) Secret(ctx context.Context, name string) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	var got string
	err := c.do(ctx, "secret", func(ctx context.Context) error {
		k := c.key("secret", name)
		if err := c.rdb.SetNX(ctx, k, hex.EncodeToString(fresh[:]), 0).Err(); err != nil {
			return err
		}
		var err error
		got, err = c.rdb.Get(ctx, k).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(got)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("secret %s: stored value is not 64 hex digits", name)
	}
	return b, nil
}

// mergeScript applies a replica's batch of statistic deltas exactly once
// and returns the totals. KEYS[1] is the totals hash, KEYS[2] the hash of
// the last batch number applied per replica; ARGV[1] is the replica id,
// ARGV[2] the batch number, then field/value pairs. A batch whose number is
// not above the replica's last is skipped, so a retry after a lost reply
// does not count twice. Fields starting with "!" are set, the rest added.
var mergeScript = redis.NewScript(`
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > last then
  for i = 3, #ARGV, 2 do
    local f = ARGV[i]
    if string.sub(f, 1, 1) == '!' then
      redis.call('HSET', KEYS[1], f, ARGV[i+1])
    else
      redis.call('HINCRBYFLOAT', KEYS[1], f, ARGV[i+1])
    end
  end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
`)

// Merge adds batch number seq of this replica's deltas to the statistics
// named id (unless that batch was applied before) and returns the totals.
// seq must grow by one per new batch; 0 with no delta only reads.
func (c *Client) Merge(ctx context.Context, id string, seq uint64, delta policy.Stats) (policy.Stats, error) {
	args := make([]any, 0, 2+2*len(delta))
	args = append(args, c.replica, strconv.FormatUint(seq, 10))
	for k, v := range delta {
		args = append(args, k, strconv.FormatFloat(v, 'g', -1, 64))
	}
	var res []any
	err := c.do(ctx, "merge", func(ctx context.Context) error {
		var err error
		res, err = mergeScript.Run(ctx, c.rdb, []string{c.key("stats", id), c.key("stats", id, "seq")}, args...).Slice()
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("redis merge %s: odd HGETALL reply", id)
	}
	out := make(policy.Stats, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		k, _ := res[i].(string)
		s, _ := res[i+1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("redis merge %s: field %q = %q: %w", id, k, s, err)
		}
		out[k] = v
	}
	return out, nil
}

// gcraScript is a GCRA rate limit (a token bucket of burst tokens refilled
// at rate per second) in one atomic step, on Redis's clock so that the
// replicas' clocks do not matter. KEYS[1] holds the theoretical arrival
// time in microseconds; ARGV[1] is the emission interval in microseconds,
// ARGV[2] the burst. It returns 0 when the request is allowed, otherwise
// the microseconds until it would be.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + T
local at = new - burst * T
if at > now then
  return math.ceil(at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
`)

// Allow takes one request from the shared bucket named key: at most burst
// at once, refilled at rps per second, across every replica. When the
// bucket is empty it returns false and how long until a request would be
// allowed.
func (c *Client) Allow(ctx context.Context, key string, rps float64, burst int) (bool, time.Duration, error) {
	if !(rps > 0) || burst < 1 {
		return false, 0, fmt.Errorf("rate limit %s: rps %v and burst %d must be positive", key, rps, burst)
	}
	interval := strconv.FormatFloat(1e6/rps, 'f', 3, 64)
	var wait int64
	err := c.do(ctx, "rate limit", func(ctx context.Context) error {
		var err error
		wait, err = gcraScript.Run(ctx, c.rdb, []string{c.key("rl", key)}, interval, burst).Int64()
		return err
	})
	if err != nil {
		return false, 0, err
	}
	if wait > 0 {
		return false, time.Duration(wait) * time.Microsecond, nil
	}
	return true, 0, nil
}

// PutPending stores a pending decision (opaque bytes) under its request id
// for ttl.
func (c *Client) PutPending(id string, data []byte, ttl time.Duration) error {
	return c.do(context.Background(), "put pending", func(ctx context.Context) error {
		return c.rdb.Set(ctx, c.key("pending", id), data, ttl).Err()
	})
}

// TakePending removes and returns the pending decision of id; ok is false
// when there is none (never stored, expired, or taken by a replica).
func (c *Client) TakePending(id string) (data []byte, ok bool, err error) {
	err = c.do(context.Background(), "take pending", func(ctx context.Context) error {
		var err error
		data, err = c.rdb.GetDel(ctx, c.key("pending", id)).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// GetHash returns the hash named name (empty when absent).
func (c *Client) GetHash(ctx context.Context, name string) (map[string]string, error) {
	var m map[string]string
	err := c.do(ctx, "get "+name, func(ctx context.Context) error {
		var err error
		m, err = c.rdb.HGetAll(ctx, c.key(name)).Result()
		return err
	})
	return m, err
}

// casScript replaces the hash KEYS[1] by the field/value pairs ARGV[2..]
// when its "gen" field equals ARGV[1] ("" for an absent hash), and returns
// 1; otherwise it changes nothing and returns 0.
var casScript = redis.NewScript(`
local gen = redis.call('HGET', KEYS[1], 'gen') or ''
if gen ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
end
return 1
`)

// SwapHash replaces the hash named name by fields when its "gen" field
// still equals gen ("" when the hash must not exist yet), so that two
// replicas changing it at once cannot both win; it reports whether it did.
func (c *Client) SwapHash(ctx context.Context, name, gen string, fields map[string]string) (bool, error) {
	args := []any{gen}
	for k, v := range fields {
		args = append(args, k, v)
	}
	var n int64
	err := c.do(ctx, "swap "+name, func(ctx context.Context) error {
		var err error
		n, err = casScript.Run(ctx, c.rdb, []string{c.key(name)}, args...).Int64()
		return err
	})
	return n == 1, err
}
