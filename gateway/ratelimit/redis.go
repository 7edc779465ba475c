package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript mirrors gcra() in limit.go in microseconds. ARGV[3] is the
// caller's clock, or -1 to use the Redis server's TIME so that every node
// shares one clock. Numbers are formatted with %d because Lua would otherwise
// print large integers in exponent form and lose precision.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
`)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Prefix is prepended to every key, e.g. "kowai:rl:".
	Prefix string
	// Clock, when set, supplies the current time with every check. Leave it
	// nil in production: the script then reads the Redis server's TIME, so
	// nodes with skewed clocks still agree. Tests set it to get exact,
	// repeatable results.
	Clock func() time.Time
}

// Redis is a GCRA Limiter shared by every node using the same Redis. Each
// check is one round trip (EVALSHA of a Lua script; the very first call per
// server falls back to EVAL once to load it). Times have microsecond
// resolution.
type Redis struct {
	client redis.Scripter
	prefix string
	clock  func() time.Time
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter over client, which may be a *redis.Client, a
// *redis.ClusterClient or a *redis.Ring. It does not own the client.
func NewRedis(client redis.Scripter, opts RedisOptions) *Redis {
	return &Redis{client: client, prefix: opts.Prefix, clock: opts.Clock}
}

// Allow implements Limiter. A Redis failure is returned wrapped in
// ErrLimiter.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	if err := limit.Validate(); err != nil {
		return Result{}, err
	}
	interval, burst := limit.params()
	now := int64(-1)
	if r.clock != nil {
		now = r.clock().UnixMicro()
	}
	v, err := gcraScript.Run(ctx, r.client, []string{r.prefix + key}, interval, burst, now).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("%w: redis gcra for %q: %w", ErrLimiter, key, err)
	}
	if len(v) != 4 {
		return Result{}, fmt.Errorf("%w: redis gcra for %q: want 4 values, got %d", ErrLimiter, key, len(v))
	}
	return Result{
		Allowed:    v[0] == 1,
		Limit:      int(burst),
		Remaining:  int(v[1]),
		ResetAfter: time.Duration(v[2]) * time.Microsecond,
		RetryAfter: time.Duration(v[3]) * time.Microsecond,
	}, nil
}
