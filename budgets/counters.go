package budgets

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Memory is an in-process Counter: each user's spending in the current day
// and month, started from the ledger the first time the user is seen in a
// period. Nodes that do not share Redis count their own calls on top of
// that.
type Memory struct {
	ledger Ledger
	mu     sync.Mutex
	users  map[string]*memEntry
}

type memEntry struct {
	day, month time.Time
	spent      Spent
}

// NewMemory returns an in-process counter over ledger.
func NewMemory(ledger Ledger) *Memory {
	return &Memory{ledger: ledger, users: map[string]*memEntry{}}
}

// entry returns the user's entry for now's periods, seeding what is new from
// the ledger. It is called with m.mu held.
func (m *Memory) entry(ctx context.Context, userID string, now time.Time) (*memEntry, error) {
	day, month := periodStarts(now)
	e := m.users[userID]
	if e != nil && e.day.Equal(day) {
		return e, nil
	}
	n := &memEntry{day: day, month: month}
	if e != nil && e.month.Equal(month) {
		n.spent.MonthTokens, n.spent.MonthUSD = e.spent.MonthTokens, e.spent.MonthUSD
	} else {
		t, err := m.ledger.Total(ctx, userID, month)
		if err != nil {
			return nil, err
		}
		n.spent.MonthTokens, n.spent.MonthUSD = t.Tokens, t.CostUSD
	}
	t, err := m.ledger.Total(ctx, userID, day)
	if err != nil {
		return nil, err
	}
	n.spent.DayTokens, n.spent.DayUSD = t.Tokens, t.CostUSD
	m.users[userID] = n
	return n, nil
}

// Spent implements Counter.
func (m *Memory) Spent(ctx context.Context, userID string, now time.Time) (Spent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(ctx, userID, now)
	if err != nil {
		return Spent{}, err
	}
	return e.spent, nil
}

// Add implements Counter.
func (m *Memory) Add(ctx context.Context, userID string, now time.Time, tokens int64, usd float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(ctx, userID, now)
	if err != nil {
		return err
	}
	e.spent.DayTokens += tokens
	e.spent.MonthTokens += tokens
	e.spent.DayUSD += usd
	e.spent.MonthUSD += usd
	return nil
}

// Reserve implements Counter, under the counter's lock.
func (m *Memory) Reserve(ctx context.Context, userID string, now time.Time, l Limits, tokens int64, usd float64) (Spent, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(ctx, userID, now)
	if err != nil {
		return Spent{}, false, err
	}
	before := e.spent
	if exceeded(before, l, now) != nil {
		return before, false, nil
	}
	e.spent.DayTokens += tokens
	e.spent.MonthTokens += tokens
	e.spent.DayUSD += usd
	e.spent.MonthUSD += usd
	return before, true, nil
}

// Redis is a Counter shared by every node: one hash per user and period
// (fields tokens and usd), living a little longer than its period. A missing
// hash is started from the ledger.
type Redis struct {
	client redis.UniversalClient
	ledger Ledger
	prefix string
}

// NewRedis returns a counter in client with keys prefix+user+period (prefix
// default "kowai:budget:").
func NewRedis(client redis.UniversalClient, ledger Ledger, prefix string) *Redis {
	if prefix == "" {
		prefix = "kowai:budget:"
	}
	return &Redis{client: client, ledger: ledger, prefix: prefix}
}

type period struct {
	key   string
	start time.Time
	ttl   time.Duration
}

func (r *Redis) periods(userID string, now time.Time) [2]period {
	day, month := periodStarts(now)
	return [2]period{
		{r.prefix + userID + ":d:" + day.Format("20060102"), day, 48 * time.Hour},
		{r.prefix + userID + ":m:" + month.Format("200601"), month, 33 * 24 * time.Hour},
	}
}

// seed starts a missing period hash from the ledger; when two nodes race,
// the first seed stays (HSETNX).
func (r *Redis) seed(ctx context.Context, p period, userID string) error {
	t, err := r.ledger.Total(ctx, userID, p.start)
	if err != nil {
		return err
	}
	pipe := r.client.TxPipeline()
	pipe.HSetNX(ctx, p.key, "tokens", t.Tokens)
	pipe.HSetNX(ctx, p.key, "usd", strconv.FormatFloat(t.CostUSD, 'g', -1, 64))
	pipe.Expire(ctx, p.key, p.ttl)
	_, err = pipe.Exec(ctx)
	return err
}

// read returns the day's and the month's hashes (tokens, usd) in one round
// trip; a hash that does not exist reads as nil.
func (r *Redis) read(ctx context.Context, ps [2]period) ([2][]any, error) {
	pipe := r.client.Pipeline()
	cmds := [2]*redis.SliceCmd{pipe.HMGet(ctx, ps[0].key, "tokens", "usd"), pipe.HMGet(ctx, ps[1].key, "tokens", "usd")}
	if _, err := pipe.Exec(ctx); err != nil {
		return [2][]any{}, err
	}
	return [2][]any{cmds[0].Val(), cmds[1].Val()}, nil
}

// ensure seeds the periods whose hash is missing, reading them first, and
// returns the hashes as read before any seeding; seeded reports whether one
// was seeded (and the values are stale).
func (r *Redis) ensure(ctx context.Context, userID string, ps [2]period) ([2][]any, bool, error) {
	vals, err := r.read(ctx, ps)
	if err != nil {
		return vals, false, err
	}
	seeded := false
	for i, p := range ps {
		if vals[i][0] == nil {
			if err := r.seed(ctx, p, userID); err != nil {
				return vals, false, err
			}
			seeded = true
		}
	}
	return vals, seeded, nil
}

// Spent implements Counter: one round trip when both hashes exist.
func (r *Redis) Spent(ctx context.Context, userID string, now time.Time) (Spent, error) {
	ps := r.periods(userID, now)
	vals, seeded, err := r.ensure(ctx, userID, ps)
	if err == nil && seeded {
		vals, err = r.read(ctx, ps)
	}
	if err != nil {
		return Spent{}, fmt.Errorf("budgets: redis: %w", err)
	}
	var out [2]struct {
		tokens int64
		usd    float64
	}
	for i := range ps {
		for j, v := range vals[i] {
			s, _ := v.(string)
			if s == "" {
				continue
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return Spent{}, fmt.Errorf("budgets: redis %s: %w", ps[i].key, err)
			}
			if j == 0 {
				out[i].tokens = int64(f)
			} else {
				out[i].usd = f
			}
		}
	}
	return Spent{DayTokens: out[0].tokens, DayUSD: out[0].usd, MonthTokens: out[1].tokens, MonthUSD: out[1].usd}, nil
}

// Add implements Counter: two round trips when both hashes exist (a check
// that they do, then the increments of both in one transaction).
func (r *Redis) Add(ctx context.Context, userID string, now time.Time, tokens int64, usd float64) error {
	ps := r.periods(userID, now)
	if _, _, err := r.ensure(ctx, userID, ps); err != nil {
		return fmt.Errorf("budgets: redis: %w", err)
	}
	pipe := r.client.TxPipeline()
	for _, p := range ps {
		pipe.HIncrBy(ctx, p.key, "tokens", tokens)
		pipe.HIncrByFloat(ctx, p.key, "usd", usd)
		pipe.Expire(ctx, p.key, p.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("budgets: redis: %w", err)
	}
	return nil
}

// reserveScript checks the day's (KEYS[1]) and month's (KEYS[2]) spending
// against the limits ARGV[1..4] (day tokens, day usd, month tokens, month usd;
// 0 is none) and, when none is reached, adds ARGV[5] tokens and ARGV[6] usd to
// both, with TTLs ARGV[7] and ARGV[8] seconds. It answers {ok, day tokens, day
// usd, month tokens, month usd} as before the reservation, numbers as strings
// (a Lua number would be cut to an integer), or {'missing'} when a hash does not
// exist yet (the caller seeds it from the ledger and runs the script again).
var reserveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return {'missing'}
end
local dt = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local du = tonumber(redis.call('HGET', KEYS[1], 'usd') or '0')
local mt = tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0')
local mu = tonumber(redis.call('HGET', KEYS[2], 'usd') or '0')
local spent = {dt, du, mt, mu}
for i = 1, 4 do
  local limit = tonumber(ARGV[i])
  if limit > 0 and spent[i] >= limit then
    return {'0', tostring(dt), tostring(du), tostring(mt), tostring(mu)}
  end
end
for k = 1, 2 do
  redis.call('HINCRBY', KEYS[k], 'tokens', ARGV[5])
  redis.call('HINCRBYFLOAT', KEYS[k], 'usd', ARGV[6])
  redis.call('EXPIRE', KEYS[k], ARGV[6 + k])
end
return {'1', tostring(dt), tostring(du), tostring(mt), tostring(mu)}
`)

// Reserve implements Counter: the check and the increments run in one Lua
// script, atomic on the Redis server, so nodes sharing it reserve in turn. One
// round trip when both hashes exist.
func (r *Redis) Reserve(ctx context.Context, userID string, now time.Time, l Limits, tokens int64, usd float64) (Spent, bool, error) {
	ps := r.periods(userID, now)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	run := func() ([]string, error) {
		return reserveScript.Run(ctx, r.client, []string{ps[0].key, ps[1].key},
			l.DayTokens, f(l.DayUSD), l.MonthTokens, f(l.MonthUSD), tokens, f(usd),
			int64(ps[0].ttl/time.Second), int64(ps[1].ttl/time.Second)).StringSlice()
	}
	res, err := run()
	if err == nil && len(res) == 1 && res[0] == "missing" {
		if _, _, err := r.ensure(ctx, userID, ps); err != nil {
			return Spent{}, false, fmt.Errorf("budgets: redis: %w", err)
		}
		res, err = run()
	}
	if err != nil {
		return Spent{}, false, fmt.Errorf("budgets: redis reserve: %w", err)
	}
	if len(res) != 5 {
		return Spent{}, false, fmt.Errorf("budgets: redis reserve answered %d values, want 5", len(res))
	}
	var n [4]float64
	for i := range n {
		if n[i], err = strconv.ParseFloat(res[i+1], 64); err != nil {
			return Spent{}, false, fmt.Errorf("budgets: redis reserve: %w", err)
		}
	}
	return Spent{DayTokens: int64(n[0]), DayUSD: n[1], MonthTokens: int64(n[2]), MonthUSD: n[3]}, res[0] == "1", nil
}
