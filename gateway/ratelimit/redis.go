package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript runs gcra() of limit.go, in microseconds, for a batch of
// checks: KEYS[i] is the i-th check's key and ARGV[3i-2..3i] its interval,
// burst and clock (-1 for the Redis server's TIME, read once per batch, so
// that every node shares one clock). Checks of one key see each other in
// order; each key's final TAT is written once, with a TTL equal to the time
// until its bucket is full again. It returns four integers per check:
// allowed, remaining, reset-after and retry-after. Numbers are written with
// %d because Lua would print large integers in exponent form.
var gcraScript = redis.NewScript(`
local server_now
local tats, ttls, order = {}, {}, {}
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3*i-2])
  local burst = tonumber(ARGV[3*i-1])
  local now = tonumber(ARGV[3*i])
  if now < 0 then
    if not server_now then
      local t = redis.call('TIME')
      server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server_now
  end
  local tat = tats[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key)) or -1
    tats[key] = tat
  end
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  local o = 4*i-3
  if now < allow_at then
    out[o], out[o+1], out[o+2], out[o+3] = 0, 0, tat - now, allow_at - now
  else
    if ttls[key] == nil then order[#order+1] = key end
    tats[key] = new_tat
    ttls[key] = math.ceil((new_tat - now) / 1000)
    out[o], out[o+1], out[o+2], out[o+3] = 1, math.floor((now - allow_at) / interval), new_tat - now, 0
  end
end
for _, key in ipairs(order) do
  redis.call('SET', key, string.format('%d', tats[key]), 'PX', ttls[key])
end
return out
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

// Redis is a GCRA Limiter shared by every node using the same Redis.
//
// A check travels to Redis in one round trip, and costs Redis one pass of a
// Lua script over a batch of checks: checks that arrive while a round trip
// is in flight wait for it to end and then go to Redis together in the
// next one, the way group commit shares fsyncs. Alone, a check goes out at
// once. Under load this saves most of the system calls and wake-ups on
// both ends, and most of Redis's per-command and per-script cost, which is
// larger than the GCRA arithmetic itself. The script is sent with EVALSHA;
// a Redis that does not have it (restarted, flushed) gets it once with EVAL.
//
// Over a *redis.Client a whole batch is one script call. Over a cluster or
// ring client, whose keys may live on different servers, every check is its
// own script call, and the batch is one pipeline. Times have microsecond
// resolution.
type Redis struct {
	client redis.Cmdable
	prefix string
	clock  func() time.Time
	// perKey sends one script call per check: the client may shard keys.
	perKey bool

	mu      sync.Mutex
	queue   []*redisCheck
	sending bool // a sendQueued goroutine is running
}

// redisCheck is one Allow waiting for its round trip.
type redisCheck struct {
	key                  string
	interval, burst, now int64
	reply                [4]int64
	err                  error
	// done is closed once reply and err are set.
	done chan struct{}
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter over client, which may be a *redis.Client, a
// *redis.ClusterClient or a *redis.Ring. It does not own the client. It
// needs no Close: the goroutine that sends batches runs only while checks
// are queued.
//
// Batches are sent with a context of their own, so one caller going away
// never fails the others' checks; the client's read and write timeouts
// bound every round trip.
func NewRedis(client redis.Cmdable, opts RedisOptions) *Redis {
	_, single := client.(*redis.Client)
	return &Redis{client: client, prefix: opts.Prefix, clock: opts.Clock, perKey: !single}
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
	c := &redisCheck{key: r.prefix + key, interval: interval, burst: burst, now: now, done: make(chan struct{})}
	r.enqueue(c)
	select {
	case <-c.done:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: redis gcra for %q: %w", ErrLimiter, key, context.Cause(ctx))
	}
	if c.err != nil {
		return Result{}, fmt.Errorf("%w: redis gcra for %q: %w", ErrLimiter, key, c.err)
	}
	v := c.reply
	return Result{
		Allowed:    v[0] == 1,
		Limit:      int(burst),
		Remaining:  int(v[1]),
		ResetAfter: time.Duration(v[2]) * time.Microsecond,
		RetryAfter: time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// enqueue queues c for the next round trip. The first check to find no
// sender running starts one.
func (r *Redis) enqueue(c *redisCheck) {
	r.mu.Lock()
	r.queue = append(r.queue, c)
	start := !r.sending
	r.sending = true
	r.mu.Unlock()
	if start {
		go r.sendQueued()
	}
}

// sendQueued runs round trips until one ends with nothing queued; what
// queues during a round trip is the next batch. It runs on a goroutine of
// its own, not on a waiting caller's: the goroutine that wakes when a round
// trip ends sends the next batch at once, where a hand-off to another
// caller's goroutine would first wait behind every runnable goroutine, and
// under load every check queued would wait with it.
func (r *Redis) sendQueued() {
	ctx := context.Background()
	for {
		// Let the goroutines already runnable go first: those about to
		// check join this batch. Under load that doubles the checks a round
		// trip carries, and halves the system calls and wake-ups on both
		// ends, which cost more than the checks; with nothing else
		// runnable it returns at once.
		runtime.Gosched()
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		if len(batch) == 0 {
			r.sending = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.send(ctx, batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// maxScriptChecks bounds the checks of one script call: Redis runs a script
// to its end before serving anyone else, and a check costs it about 2 µs.
const maxScriptChecks = 256

// send runs batch in one round trip, as script calls of at most
// maxScriptChecks checks each (one each when keys may be sharded), and
// again with EVAL when Redis lacks the script.
func (r *Redis) send(ctx context.Context, batch []*redisCheck) {
	size := maxScriptChecks
	if r.perKey {
		size = 1
	}
	groups := slices.Collect(slices.Chunk(batch, size))
	missing := r.pipeline(ctx, groups, gcraScript.EvalSha)
	if len(missing) > 0 {
		r.pipeline(ctx, missing, gcraScript.Eval)
	}
}

// pipeline sends one script call per group of checks and returns the groups
// that failed with NOSCRIPT, leaving their errors unset.
func (r *Redis) pipeline(ctx context.Context, groups [][]*redisCheck,
	eval func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd) [][]*redisCheck {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(groups))
	for i, g := range groups {
		keys := make([]string, len(g))
		args := make([]any, 0, 3*len(g))
		for j, c := range g {
			keys[j] = c.key
			args = append(args, c.interval, c.burst, c.now)
		}
		cmds[i] = eval(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	var missing [][]*redisCheck
	for i, g := range groups {
		vals, err := cmds[i].Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			missing = append(missing, g)
			continue
		}
		if err == nil && len(vals) != 4*len(g) {
			err = fmt.Errorf("script returned %d values for %d checks, want 4 each", len(vals), len(g))
		}
		for j, c := range g {
			if c.err = err; err == nil {
				c.reply = [4]int64(vals[4*j : 4*j+4])
			}
		}
	}
	return missing
}
