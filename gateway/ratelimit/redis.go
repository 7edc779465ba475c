package ratelimit

import (
	"context"
	"fmt"
	"sync"
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
// check is one EVALSHA of a Lua script (the first call per server falls back
// to EVAL once to load it), and costs its caller one round trip at most:
// checks that arrive while a round trip is in flight wait for it to end and
// then go to Redis together, pipelined, in the next one. Under load that
// saves most of the system calls and wake-ups on both ends, the way group
// commit saves fsyncs; alone, a check goes out at once. Times have
// microsecond resolution.
type Redis struct {
	client redis.Cmdable
	prefix string
	clock  func() time.Time

	mu      sync.Mutex
	queue   []*redisCheck
	sending bool // a caller is running round trips for the queue
}

// redisCheck is one Allow waiting for its round trip.
type redisCheck struct {
	key                  string
	interval, burst, now int64
	reply                []int64
	err                  error
	// signal gets false once reply and err are set, or true when this
	// check's caller must send the next batch (its own check included).
	signal chan bool
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter over client, which may be a *redis.Client, a
// *redis.ClusterClient or a *redis.Ring. It does not own the client, and it
// starts no goroutine: callers take turns sending the batches.
//
// A batch is sent without the cancellation of the caller that happens to
// send it, so one client going away never fails the others' checks; the
// client's read and write timeouts bound every round trip.
func NewRedis(client redis.Cmdable, opts RedisOptions) *Redis {
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
	c := &redisCheck{key: r.prefix + key, interval: interval, burst: burst, now: now, signal: make(chan bool, 1)}
	r.check(context.WithoutCancel(ctx), c)
	if c.err != nil {
		return Result{}, fmt.Errorf("%w: redis gcra for %q: %w", ErrLimiter, key, c.err)
	}
	v := c.reply
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

// check queues c and returns once its reply is in. The caller that finds
// nobody sending sends the queue; when its round trip ends it hands the
// queue that built up meanwhile to the first check waiting in it.
func (r *Redis) check(ctx context.Context, c *redisCheck) {
	r.mu.Lock()
	r.queue = append(r.queue, c)
	lead := !r.sending
	r.sending = true
	r.mu.Unlock()
	if !lead && !<-c.signal {
		return
	}
	r.mu.Lock()
	batch := r.queue
	r.queue = nil
	r.mu.Unlock()

	r.send(ctx, batch)

	r.mu.Lock()
	if len(r.queue) > 0 {
		r.queue[0].signal <- true
	} else {
		r.sending = false
	}
	r.mu.Unlock()
	for _, b := range batch {
		if b != c {
			b.signal <- false
		}
	}
}

// send runs batch in one pipelined round trip, and the checks that found
// the script missing (Redis restarted or flushed it) in a second with EVAL.
func (r *Redis) send(ctx context.Context, batch []*redisCheck) {
	missing := r.pipeline(ctx, batch, gcraScript.EvalSha)
	if len(missing) > 0 {
		r.pipeline(ctx, missing, gcraScript.Eval)
	}
}

// pipeline sends one command per check and returns the checks that failed
// with NOSCRIPT, leaving their error unset.
func (r *Redis) pipeline(ctx context.Context, batch []*redisCheck,
	eval func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd) []*redisCheck {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = eval(ctx, pipe, []string{c.key}, c.interval, c.burst, c.now)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	var missing []*redisCheck
	for i, c := range batch {
		c.reply, c.err = cmds[i].Int64Slice()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			c.err = nil
			missing = append(missing, c)
		}
	}
	return missing
}
