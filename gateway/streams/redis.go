package streams

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store shared by every node through Redis Streams.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	maxLen int
	block  time.Duration
	poll   time.Duration
	log    *slog.Logger

	mu    sync.Mutex
	tails map[string]*tail

	// pipe sends Begin's and Append's scripts, many streams' in one round
	// trip under load.
	pipe *pipeliner
}

var _ Store = (*Redis)(nil)

// RedisOptions configures NewRedis; zero values mean the defaults.
type RedisOptions struct {
	// Prefix starts every key (default "kowai:stream:").
	Prefix string
	// TTL is how long a stream is kept after its last append (DefaultTTL).
	TTL time.Duration
	// MaxLen bounds the entries kept per stream (DefaultMaxLen): the last
	// MaxLen, and the rest of the batch holding the first of them.
	MaxLen int
	// Poll is how often a reader that heard nothing reads the stream
	// itself, a safety net under the shared tail (default 1 s).
	Poll time.Duration
	// Logger receives the tail loops' failures (default: discarded).
	Logger *slog.Logger
}

// NewRedis returns a store over rdb.
func NewRedis(rdb redis.UniversalClient, opts RedisOptions) *Redis {
	r := &Redis{rdb: rdb, prefix: opts.Prefix, ttl: opts.TTL, maxLen: opts.MaxLen, poll: opts.Poll,
		block: 2 * time.Second, log: opts.Logger, tails: map[string]*tail{}}
	if r.prefix == "" {
		r.prefix = "kowai:stream:"
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.maxLen <= 0 {
		r.maxLen = DefaultMaxLen
	}
	if r.poll <= 0 {
		r.poll = time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.pipe = newPipeliner(rdb, r.maxLen, r.ttl)
	return r
}

// keys returns the stream's entries key and its meta key, in one hash slot.
func (r *Redis) keys(id string) (string, string) {
	base := r.prefix + "{" + id + "}"
	return base + ":s", base + ":m"
}

// awaitKey returns the key that a follower awaiting stream id sets while
// it waits (see Follow), in the stream's hash slot: while it exists, the
// stream is created as a Redis stream even when its first write finishes
// it, so that the follower's XREAD BLOCK wakes.
func (r *Redis) awaitKey(id string) string { return r.prefix + "{" + id + "}:a" }

// ownerLua defines owner(sk, mk) for the scripts: the stream's owner (nil
// when it does not exist) and whether its meta key holds it. A stream
// created with its first entries (Start) is one key: its owner is a field
// (o) of its first message, until a Begin or a trim that could drop that
// message writes the meta key.
const ownerLua = `
local function owner(sk, mk)
  local o = redis.call('HGET', mk, 'owner')
  if o then return o, true end
  local m = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)
  if #m == 0 then return nil, false end
  local f = m[1][2]
  for j = 1, #f - 1, 2 do
    if f[j] == 'o' then return f[j + 1], false end
  end
  return nil, false
end
`

// beginScript claims or re-opens a stream in one round trip: {-1} when
// another owner holds it, else {the new attempt number, the last message's
// first field and its value (the batch), or nothing}.
var beginScript = redis.NewScript(ownerLua + `
local o, meta = owner(KEYS[1], KEYS[2])
if o and o ~= ARGV[1] then return {-1} end
if not meta then
  local before = 0
  if o then before = 1 end
  redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'attempts', before)
end
local n = redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then
  local c = redis.call('HGET', KEYS[2], 'c')
  if c then return {n, 'c', c} end
  return {n}
end
return {n, last[1][2][1], last[1][2][2]}
`)

// appendScript adds, for each of one or more streams, one message holding a
// batch of entries whose numbers continue the stream's. KEYS holds each
// stream's entries key, meta key and await key; ARGV is {maxLen, ttl},
// then for each stream {first seq, last seq, batch, owner, final}. It
// answers one result per stream, in order: 1, or the refusal
// KOWAI_NOTFOUND or KOWAI_CONFLICT (a refused stream is left as it was;
// the others are written all the same).
//
// The message's ID is the batch's last number, so a reader after seq N
// finds every message holding an entry after N from ID N+1 on, and the
// stream is trimmed by number (MINID) to its last maxLen entries and the
// rest of the message holding the first of them. Trimming is exact: a Redis
// stream node holds up to 100 messages, and compact batches are small, so a
// node's worth of entries can be many times maxLen. With an owner (Start), a
// stream that does not exist is created as its first attempt: with entries,
// as one key whose first message names the owner; without, as its meta key
// alone. A whole reply, created with a batch that ends with its final entry
// (final is "1"), is its meta hash alone, the batch in its field c and its
// last number in last: a Redis stream costs Redis a 4 KiB node and twice
// the time to create, and a finished reply has no live entries to tail. A
// follower awaiting the stream (its await key exists) gets a Redis stream
// all the same, whose first message wakes its XREAD BLOCK.
var appendScript = redis.NewScript(ownerLua + `
local maxlen, ttl = tonumber(ARGV[1]), ARGV[2]
local function add(sk, last, batch, own)
  local minid = tonumber(last) - maxlen + 1
  if minid > 1 and own ~= '' then
    redis.call('XADD', sk, 'MINID', minid .. '-0', last .. '-1', 'c', batch, 'o', own)
  elseif minid > 1 then
    redis.call('XADD', sk, 'MINID', minid .. '-0', last .. '-1', 'c', batch)
  elseif own ~= '' then
    redis.call('XADD', sk, last .. '-1', 'c', batch, 'o', own)
  else
    redis.call('XADD', sk, last .. '-1', 'c', batch)
  end
  redis.call('PEXPIRE', sk, ttl)
end
local function one(sk, mk, ak, first, last, batch, own, final)
  if batch ~= '' and own ~= '' then
    local whole = final == '1' and tonumber(last) <= maxlen
    local n
    if whole then
      n = redis.call('EXISTS', sk, mk, ak)
    else
      n = redis.call('EXISTS', sk, mk)
    end
    if n == 0 or (whole and redis.call('EXISTS', sk, mk) == 0) then
      if tonumber(first) ~= 1 then return 'KOWAI_CONFLICT' end
      if whole and n == 0 then
        redis.call('HSET', mk, 'owner', own, 'attempts', 1, 'last', last, 'c', batch)
        redis.call('PEXPIRE', mk, ttl)
      else
        add(sk, last, batch, own)
      end
      return 1
    end
  end
  local o, meta = owner(sk, mk)
  if not o and own == '' then return 'KOWAI_NOTFOUND' end
  if o and own ~= '' and o ~= own then return 'KOWAI_CONFLICT' end
  if batch ~= '' then
    local seq = 0
    if o then
      local top = redis.call('XREVRANGE', sk, '+', '-', 'COUNT', 1)
      if #top > 0 then
        seq = tonumber(string.match(top[1][1], '^(%d+)'))
      else
        seq = tonumber(redis.call('HGET', mk, 'last') or 0)
      end
    end
    if tonumber(first) ~= seq + 1 then return 'KOWAI_CONFLICT' end
  end
  if not o then
    redis.call('HSET', mk, 'owner', own, 'attempts', 1)
    meta = true
  end
  if batch ~= '' then
    if not meta and tonumber(last) - maxlen + 1 > 1 then
      -- The trim may drop the first message, which names the owner.
      redis.call('HSET', mk, 'owner', o, 'attempts', 1)
      meta = true
    end
    add(sk, last, batch, '')
  end
  if meta then redis.call('PEXPIRE', mk, ttl) end
  return 1
end
local out = {}
for i = 1, #KEYS / 3 do
  local a = 5 * i - 2
  out[i] = one(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
return out
`)

// Begin implements Store.
func (r *Redis) Begin(ctx context.Context, id, owner string) (Cursor, error) {
	sk, mk := r.keys(id)
	res, err := r.pipe.run(ctx, beginScript, []string{sk, mk}, owner, r.ttl.Milliseconds()).Slice()
	if err != nil {
		return Cursor{}, fmt.Errorf("stream %s: begin: %w", id, err)
	}
	n, _ := res[0].(int64)
	if n < 0 {
		return Cursor{}, fmt.Errorf("stream %s: %w", id, ErrConflict)
	}
	c := Cursor{Attempt: int(n)}
	if len(res) > 2 {
		field, _ := res[1].(string)
		raw, _ := res[2].(string)
		es, err := decodeValue(field, raw)
		if err != nil || len(es) == 0 {
			return Cursor{}, fmt.Errorf("stream %s: last message: %w", id, errors.Join(err, errEmptyMessage))
		}
		e := es[len(es)-1]
		c.Last, c.Finished, c.Failed = e.Seq, e.Final(), e.Kind == KindError
	}
	return c, nil
}

// Append implements Store.
func (r *Redis) Append(ctx context.Context, id string, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	return r.append(ctx, id, "", entries)
}

// Start implements Store: the stream is created, when it does not exist, by
// the script that appends the entries, so a reply's first batch costs one
// script run instead of two (Begin's and Append's).
func (r *Redis) Start(ctx context.Context, id, owner string, entries ...Entry) error {
	if owner == "" {
		return fmt.Errorf("stream %s: start without an owner", id)
	}
	return r.append(ctx, id, owner, entries)
}

// append runs appendScript for entries, creating the stream for owner when
// owner is not empty.
func (r *Redis) append(ctx context.Context, id, owner string, entries []Entry) error {
	var batch []byte
	var first, last int64
	if len(entries) > 0 {
		for i, e := range entries {
			if e.Seq != entries[0].Seq+int64(i) {
				return fmt.Errorf("stream %s: seq %d after %d: %w", id, e.Seq, entries[i-1].Seq, ErrConflict)
			}
		}
		var err error
		batch, err = appendBatch(make([]byte, 0, batchSize(entries)), entries)
		if err != nil {
			return fmt.Errorf("stream %s: encode entries from %d: %w", id, entries[0].Seq, err)
		}
		first, last = entries[0].Seq, entries[len(entries)-1].Seq
	}
	sk, mk := r.keys(id)
	final := len(entries) > 0 && entries[len(entries)-1].Final()
	res, err := r.pipe.append(ctx, &appendCall{ctx: ctx, streamKey: sk, metaKey: mk, awaitKey: r.awaitKey(id),
		first: first, last: last, batch: batch, owner: owner, final: final})
	if err != nil {
		return fmt.Errorf("stream %s: append: %w", id, err)
	}
	switch res {
	case int64(1):
		return nil
	case "KOWAI_NOTFOUND":
		return fmt.Errorf("stream %s: %w", id, ErrNotFound)
	case "KOWAI_CONFLICT":
		return fmt.Errorf("stream %s: seq %d: %w", id, first, ErrConflict)
	}
	return fmt.Errorf("stream %s: append: %w %v", id, errAppendAnswer, res)
}

// Owner implements Store.
// The owner is in the meta key, or, for a stream created with its first
// entries, in its first message (see ownerLua): both are read in one round
// trip.
func (r *Redis) Owner(ctx context.Context, id string) (string, error) {
	sk, mk := r.keys(id)
	var meta *redis.StringCmd
	var first *redis.XMessageSliceCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGet(ctx, mk, "owner")
		first = p.XRangeN(ctx, sk, "-", "+", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("stream %s: owner: %w", id, err)
	}
	if o, err := meta.Result(); err == nil {
		return o, nil
	}
	if msgs := first.Val(); len(msgs) > 0 {
		if o, ok := msgs[0].Values["o"].(string); ok {
			return o, nil
		}
	}
	return "", fmt.Errorf("stream %s: %w", id, ErrNotFound)
}

// Follow implements Store. Live entries come from the node's one tail loop
// for the stream; a reader that falls behind it, or hears nothing for Poll,
// reads the stream itself.
//
// A stream awaited (until) wakes its follower through the same tail: the
// XREAD BLOCK of a key that does not exist returns with the first message
// added to it. The follower sets the stream's await key meanwhile, so that
// a reply whose first write finishes it is written as a Redis stream too
// (see appendScript). A stream created without entries is seen by the next
// look at its owner (every Poll, and at until).
func (r *Redis) Follow(ctx context.Context, id string, after int64, until time.Time, fn func(Entry) error) error {
	if _, err := r.Owner(ctx, id); err != nil {
		if !errors.Is(err, ErrNotFound) || !time.Now().Before(until) {
			return err
		}
		// The await key outlives until by a second: a write then still
		// made as a Redis stream only costs Redis more.
		if err := r.rdb.Set(ctx, r.awaitKey(id), "1", time.Until(until)+time.Second).Err(); err != nil {
			return fmt.Errorf("stream %s: await: %w", id, err)
		}
	} else {
		until = time.Time{}
	}
	// exists looks at the stream's owner while it may still be awaited:
	// false (and no error) while the stream is not there before until.
	exists := func() (bool, error) {
		_, err := r.Owner(ctx, id)
		switch {
		case err == nil:
			until = time.Time{}
			return true, nil
		case errors.Is(err, ErrNotFound) && time.Now().Before(until):
			return false, nil
		}
		return false, err
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	sub := r.subscribe(id, after)
	defer r.unsubscribe(id, sub)
	sk, mk := r.keys(id)
	// catchUp reads the entries after after: a whole reply's, kept in its
	// meta hash (see appendScript), then the stream's messages.
	catchUp := func() (bool, error) {
		var whole *redis.StringCmd
		var read *redis.XMessageSliceCmd
		// Each command carries its own error, checked below.
		_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			whole = p.HGet(ctx, mk, "c")
			read = p.XRange(ctx, sk, strconv.FormatInt(after+1, 10)+"-1", "+")
			return nil
		})
		if err := cmp.Or(read.Err(), ignoreNil(whole.Err())); err != nil {
			return false, fmt.Errorf("stream %s: read: %w", id, err)
		}
		var batches [][]Entry
		if raw, err := whole.Result(); err == nil {
			es, err := decodeBatch([]byte(raw))
			if err != nil {
				return false, fmt.Errorf("stream %s: whole reply: %w", id, err)
			}
			batches = append(batches, es)
		}
		for _, m := range read.Val() {
			es, err := decodeMessage(m)
			if err != nil {
				return false, fmt.Errorf("stream %s: %w", id, err)
			}
			batches = append(batches, es)
		}
		for _, es := range batches {
			for _, e := range es {
				if e.Seq <= after {
					continue
				}
				if err := fn(e); err != nil {
					return false, err
				}
				after = e.Seq
				if e.Final() {
					return true, nil
				}
			}
		}
		return false, nil
	}
	if done, err := catchUp(); done || err != nil {
		return err
	}
	poll := time.NewTicker(r.poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-sub:
			switch {
			case e.Seq <= after:
				continue
			case e.Seq > after+1:
				// A gap: entries were dropped for this slow reader.
				if done, err := catchUp(); done || err != nil {
					return err
				}
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
			until = time.Time{} // it exists
			if e.Final() {
				return nil
			}
		case <-deadline:
			deadline = nil
			if _, err := exists(); err != nil {
				return err
			}
		case <-poll.C:
			ok, err := exists()
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if done, err := catchUp(); done || err != nil {
				return err
			}
		}
	}
}

// tail is the one XREAD BLOCK loop of a stream on this node, fanning its
// entries out to the node's readers.
type tail struct {
	subs map[chan Entry]struct{}
}

// subscribe registers a reader, starting the stream's tail loop after seq
// after when the node has none.
func (r *Redis) subscribe(id string, after int64) chan Entry {
	ch := make(chan Entry, 256)
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tails[id]
	if t == nil {
		t = &tail{subs: map[chan Entry]struct{}{}}
		r.tails[id] = t
		go r.runTail(id, t, after)
	}
	t.subs[ch] = struct{}{}
	return ch
}

func (r *Redis) unsubscribe(id string, ch chan Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tails[id]; t != nil {
		delete(t.subs, ch)
	}
}

// runTail reads the stream's new entries until no reader is left or the
// final entry went by. A reader that cannot keep up misses entries here and
// reads them itself (see Follow).
func (r *Redis) runTail(id string, t *tail, after int64) {
	sk, _ := r.keys(id)
	last := strconv.FormatInt(after, 10) + "-1"
	ctx := context.Background()
	for {
		r.mu.Lock()
		if len(t.subs) == 0 {
			delete(r.tails, id)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{sk, last}, Block: r.block, Count: 512}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			r.log.Warn("stream tail read failed", "stream_id", id, "error", err)
			time.Sleep(r.poll)
			continue
		}
		final := false
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				es, err := decodeMessage(m)
				if err != nil {
					r.log.Warn("stream entry undecodable", "stream_id", id, "error", err)
					continue
				}
				r.mu.Lock()
				for _, e := range es {
					final = final || e.Final()
					for ch := range t.subs {
						select {
						case ch <- e:
						default:
						}
					}
				}
				r.mu.Unlock()
			}
		}
		if final {
			r.mu.Lock()
			if r.tails[id] == t {
				delete(r.tails, id)
			}
			r.mu.Unlock()
			return
		}
	}
}

// ignoreNil returns err, or nil for redis.Nil (no such key or field).
func ignoreNil(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// errEmptyMessage reports a stream message without entries.
var errEmptyMessage = errors.New("message holds no entry")

// decodeMessage returns the entries of a stream message: a compact batch
// under field "c" (see appendBatch), or, as earlier versions wrote them, a
// JSON array of entries under "b" or one entry under "e".
func decodeMessage(m redis.XMessage) ([]Entry, error) {
	for _, field := range []string{"c", "b", "e"} {
		if raw, ok := m.Values[field].(string); ok {
			es, err := decodeValue(field, raw)
			if err != nil {
				return nil, fmt.Errorf("message %s: %w", m.ID, err)
			}
			return es, nil
		}
	}
	return nil, fmt.Errorf("message %s: %w", m.ID, errEmptyMessage)
}

// decodeValue decodes a message's field: "c" holds a compact batch, "b" a
// JSON array of entries, "e" one entry.
func decodeValue(field, raw string) ([]Entry, error) {
	switch field {
	case "c":
		return decodeBatch([]byte(raw))
	case "e":
		var e Entry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, err
		}
		return []Entry{e}, nil
	}
	var es []Entry
	if err := json.Unmarshal([]byte(raw), &es); err != nil {
		return nil, err
	}
	return es, nil
}
