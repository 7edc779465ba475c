package streams

import (
	"context"
	"testing"

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
		return &appendCall{ctx: ctx, streamKey: sk, metaKey: mk, first: first, last: last, batch: b, owner: owner,
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
