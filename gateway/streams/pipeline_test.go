package streams

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
)

// TestAppendsShareOneRun: the appends of one pipeline to a single Redis
// server go as one script run, and each stream gets its own answer: a
// refused stream (another owner, a gap, none) leaves the others written.
func TestAppendsShareOneRun(t *testing.T) {
	rdb := testenv.Redis(t)
	r := NewRedis(rdb, RedisOptions{Prefix: testenv.Prefix("pipeline")})
	if !r.pipe.together {
		t.Fatal("a single server's appends do not share a run")
	}
	ctx := t.Context()
	if err := r.Start(ctx, "taken", "u2", Entry{Seq: 1, Kind: KindToken, Delta: "x"}); err != nil {
		t.Fatal(err)
	}
	batch := func(es ...Entry) []byte {
		b, err := appendBatch(nil, es)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	call := func(id string, first, last int64, b []byte, owner string) *appendCall {
		sk, mk := r.keys(id)
		return &appendCall{ctx: ctx, streamKey: sk, metaKey: mk, awaitKey: r.awaitKey(id), first: first, last: last, batch: b, owner: owner,
			done: make(chan struct{})}
	}
	calls := []*appendCall{
		call("new", 1, 2, batch(Entry{Seq: 1, Kind: KindToken, Delta: "a"}, Entry{Seq: 2, Kind: KindToken, Delta: "b"}), "u1"),
		call("taken", 2, 2, batch(Entry{Seq: 2, Kind: KindToken, Delta: "y"}), "u1"),
		call("taken", 3, 3, batch(Entry{Seq: 3, Kind: KindToken, Delta: "z"}), ""),
		call("missing", 1, 1, batch(Entry{Seq: 1, Kind: KindToken, Delta: "m"}), ""),
		call("taken", 2, 2, batch(Entry{Seq: 2, Kind: KindToken, Delta: "y"}), ""),
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	gone := call("gone", 1, 1, batch(Entry{Seq: 1, Kind: KindToken, Delta: "g"}), "u1")
	gone.ctx = canceled
	r.pipe.send(nil, append(calls, gone))
	want := []any{int64(1), "KOWAI_CONFLICT", "KOWAI_CONFLICT", "KOWAI_NOTFOUND", int64(1)}
	for i, c := range calls {
		<-c.done
		if c.err != nil || c.res != want[i] {
			t.Fatalf("call %d: %v %v, want %v", i, c.res, c.err, want[i])
		}
	}
	<-gone.done
	if gone.err == nil {
		t.Fatal("a call whose caller left was sent")
	}
	if _, err := r.Owner(ctx, "gone"); err == nil {
		t.Fatal("a call whose caller left was written")
	}
	for id, want := range map[string]string{"new": "ab", "taken": "xy"} {
		sk, _ := r.keys(id)
		msgs, err := rdb.XRange(ctx, sk, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		text := ""
		for _, m := range msgs {
			es, err := decodeMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				text += e.Delta
			}
		}
		if text != want {
			t.Fatalf("stream %s holds %q, want %q", id, text, want)
		}
	}
}

// TestStartWritesOneKey: a stream created with its first entries is one
// Redis key, whose first message names the owner; it reads, resumes and
// begins again as a stream with a meta key does, and keeps its owner when
// a trim drops that message.
func TestStartWritesOneKey(t *testing.T) {
	rdb := testenv.Redis(t)
	r := NewRedis(rdb, RedisOptions{Prefix: testenv.Prefix("onekey"), MaxLen: 10})
	ctx := t.Context()
	if err := r.Start(ctx, "s", "u1", Entry{Seq: 1, Kind: KindToken, Delta: "a"}, Entry{Seq: 2, Kind: KindToken, Delta: "b"}); err != nil {
		t.Fatal(err)
	}
	sk, mk := r.keys("s")
	if n, err := rdb.Exists(ctx, mk).Result(); err != nil || n != 0 {
		t.Fatalf("meta key written: %d %v", n, err)
	}
	if ttl, err := rdb.PTTL(ctx, sk).Result(); err != nil || ttl <= 0 {
		t.Fatalf("stream key without expiry: %v %v", ttl, err)
	}
	if o, err := r.Owner(ctx, "s"); err != nil || o != "u1" {
		t.Fatalf("owner %q %v", o, err)
	}
	if err := r.Start(ctx, "s", "u2", Entry{Seq: 3, Kind: KindToken, Delta: "x"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("start by another owner: %v", err)
	}
	if err := r.Append(ctx, "s", Entry{Seq: 3, Kind: KindToken, Delta: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Append(ctx, "s", Entry{Seq: 3, Kind: KindToken, Delta: "again"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("repeated number: %v", err)
	}
	if _, err := r.Begin(ctx, "s", "u2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("begin by another owner: %v", err)
	}
	if c, err := r.Begin(ctx, "s", "u1"); err != nil || c != (Cursor{Attempt: 2, Last: 3}) {
		t.Fatalf("begin: %+v %v", c, err)
	}

	// Trimmed past its first message, a one-key stream keeps its owner.
	var es []Entry
	for seq := int64(1); seq <= 6; seq++ {
		es = append(es, Entry{Seq: seq, Kind: KindToken, Delta: "t"})
	}
	if err := r.Start(ctx, "long", "u1", es...); err != nil {
		t.Fatal(err)
	}
	for seq := int64(7); seq <= 30; seq++ {
		if err := r.Append(ctx, "long", Entry{Seq: seq, Kind: KindToken, Delta: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	lsk, _ := r.keys("long")
	if first, err := rdb.XRangeN(ctx, lsk, "-", "+", 1).Result(); err != nil || len(first) != 1 || first[0].ID == "6-1" {
		t.Fatalf("the first message was not trimmed: %v %v", first, err)
	}
	if o, err := r.Owner(ctx, "long"); err != nil || o != "u1" {
		t.Fatalf("owner after the trim %q %v", o, err)
	}
	if c, err := r.Begin(ctx, "long", "u1"); err != nil || c != (Cursor{Attempt: 2, Last: 30}) {
		t.Fatalf("begin after the trim: %+v %v", c, err)
	}
}

// TestWholeReplyIsOneHash: a reply whose first write holds its final entry
// is its meta hash alone, without a Redis stream (whose 4 KiB node costs
// Redis twice the time to create); it reads, resumes, begins again and
// refuses appends as a Redis stream does. A follower awaiting the stream
// gets a Redis stream all the same (its XREAD BLOCK wakes on it), and a
// reply longer than MaxLen is a Redis stream, trimmed.
func TestWholeReplyIsOneHash(t *testing.T) {
	rdb := testenv.Redis(t)
	r := NewRedis(rdb, RedisOptions{Prefix: testenv.Prefix("whole"), MaxLen: 10, Poll: time.Minute})
	ctx := t.Context()
	reply := func(n int64) []Entry {
		var es []Entry
		for seq := int64(1); seq < n; seq++ {
			es = append(es, Entry{Seq: seq, Kind: KindToken, Delta: "t"})
		}
		return append(es, Entry{Seq: n, Kind: KindDone, Data: []byte(`{"response":"t"}`)})
	}
	follow := func(id string, after int64) []int64 {
		t.Helper()
		var got []int64
		if err := r.Follow(ctx, id, after, time.Time{}, func(e Entry) error {
			got = append(got, e.Seq)
			return nil
		}); err != nil {
			t.Fatalf("follow %s after %d: %v", id, after, err)
		}
		return got
	}
	if err := r.Start(ctx, "w", "u1", reply(4)...); err != nil {
		t.Fatal(err)
	}
	sk, mk := r.keys("w")
	if n, err := rdb.Exists(ctx, sk).Result(); err != nil || n != 0 {
		t.Fatalf("a whole reply wrote a Redis stream: %d %v", n, err)
	}
	if typ, err := rdb.Type(ctx, mk).Result(); err != nil || typ != "hash" {
		t.Fatalf("meta key %q %v", typ, err)
	}
	if ttl, err := rdb.PTTL(ctx, mk).Result(); err != nil || ttl <= 0 {
		t.Fatalf("meta key without expiry: %v %v", ttl, err)
	}
	if o, err := r.Owner(ctx, "w"); err != nil || o != "u1" {
		t.Fatalf("owner %q %v", o, err)
	}
	if got := follow("w", 0); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("follow from the start: %v", got)
	}
	if got := follow("w", 2); !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("resume after 2: %v", got)
	}
	for _, e := range []Entry{{Seq: 4, Kind: KindToken, Delta: "again"}, {Seq: 1, Kind: KindToken, Delta: "again"}} {
		if err := r.Append(ctx, "w", e); !errors.Is(err, ErrConflict) {
			t.Fatalf("append of seq %d: %v", e.Seq, err)
		}
	}
	if err := r.Start(ctx, "w", "u2", reply(2)...); !errors.Is(err, ErrConflict) {
		t.Fatalf("start by another owner: %v", err)
	}
	if _, err := r.Begin(ctx, "w", "u2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("begin by another owner: %v", err)
	}
	if c, err := r.Begin(ctx, "w", "u1"); err != nil || c != (Cursor{Attempt: 2, Last: 4, Finished: true}) {
		t.Fatalf("begin: %+v %v", c, err)
	}

	// Awaited, it is a Redis stream, and its follower wakes at once.
	out := make(chan error, 1)
	go func() {
		out <- r.Follow(ctx, "awaited", 0, time.Now().Add(time.Minute), func(Entry) error { return nil })
	}()
	time.Sleep(100 * time.Millisecond) // the follower is waiting
	if err := r.Start(ctx, "awaited", "u1", reply(3)...); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-out:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower of an awaited whole reply waited for its poll")
	}
	if ask, _ := r.keys("awaited"); rdb.Exists(ctx, ask).Val() != 1 {
		t.Fatal("an awaited whole reply is not a Redis stream")
	}

	// Longer than MaxLen: a Redis stream, trimmed to the bound.
	if err := r.Start(ctx, "long", "u1", reply(25)...); err != nil {
		t.Fatal(err)
	}
	if lsk, _ := r.keys("long"); rdb.Exists(ctx, lsk).Val() != 1 {
		t.Fatal("a whole reply longer than MaxLen is not a Redis stream")
	}
	if got := follow("long", 20); !slices.Equal(got, []int64{21, 22, 23, 24, 25}) {
		t.Fatalf("resume of the long reply: %v", got)
	}
}
