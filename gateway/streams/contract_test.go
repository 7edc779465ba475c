package streams_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/testenv"
)

func tok(seq int64, delta string) streams.Entry {
	return streams.Entry{Seq: seq, Kind: streams.KindToken, Delta: delta}
}

func done(seq int64) streams.Entry {
	return streams.Entry{Seq: seq, Kind: streams.KindDone, Data: []byte(`{"response":"ab"}`)}
}

// collect follows id after seq after until it returns.
func collect(ctx context.Context, s streams.Store, id string, after int64) ([]streams.Entry, error) {
	var got []streams.Entry
	err := s.Follow(ctx, id, after, time.Time{}, func(e streams.Entry) error {
		got = append(got, e)
		return nil
	})
	return got, err
}

func seqs(es []streams.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// runContract runs the behaviour every Store must share; newStore returns a
// store isolated from other calls.
func runContract(t *testing.T, newStore func(t *testing.T) streams.Store) {
	t.Run("begin, append, follow a finished stream", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c, err := s.Begin(ctx, "a", "u1")
		if err != nil || c != (streams.Cursor{Attempt: 1}) {
			t.Fatalf("begin: %+v %v", c, err)
		}
		if err := s.Append(ctx, "a", tok(1, "a"), tok(2, "b")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "a", done(3)); err != nil {
			t.Fatal(err)
		}
		for after, want := range map[int64][]int64{0: {1, 2, 3}, 1: {2, 3}, 2: {3}} {
			got, err := collect(ctx, s, "a", after)
			if err != nil || !equal(seqs(got), want) {
				t.Fatalf("after %d: %v %v, want %v", after, seqs(got), err, want)
			}
		}
		got, _ := collect(ctx, s, "a", 0)
		if got[0].Delta != "a" || got[2].Kind != streams.KindDone || string(got[2].Data) != `{"response":"ab"}` {
			t.Fatalf("entries %+v", got)
		}
		if o, err := s.Owner(ctx, "a"); err != nil || o != "u1" {
			t.Fatalf("owner %q %v", o, err)
		}
	})
	t.Run("unknown stream", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Owner(ctx, "nope"); !errors.Is(err, streams.ErrNotFound) {
			t.Fatalf("owner: %v", err)
		}
		if _, err := collect(ctx, s, "nope", 0); !errors.Is(err, streams.ErrNotFound) {
			t.Fatalf("follow: %v", err)
		}
		if err := s.Append(ctx, "nope", tok(1, "x")); !errors.Is(err, streams.ErrNotFound) {
			t.Fatalf("append: %v", err)
		}
	})
	t.Run("sequence numbers continue without gaps", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Begin(ctx, "g", "u1"); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]streams.Entry{{tok(2, "x")}, {tok(1, "x"), tok(3, "y")}} {
			if err := s.Append(ctx, "g", bad...); !errors.Is(err, streams.ErrConflict) {
				t.Fatalf("append %v: %v", seqs(bad), err)
			}
		}
		if err := s.Append(ctx, "g", tok(1, "x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "g", tok(1, "again")); !errors.Is(err, streams.ErrConflict) {
			t.Fatalf("duplicate: %v", err)
		}
	})
	t.Run("another owner is refused", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Begin(ctx, "o", "u1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(ctx, "o", "u2"); !errors.Is(err, streams.ErrConflict) {
			t.Fatalf("begin by another owner: %v", err)
		}
		if o, _ := s.Owner(ctx, "o"); o != "u1" {
			t.Fatalf("owner now %q", o)
		}
	})
	t.Run("a second attempt continues the numbering", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Begin(ctx, "r", "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "r", tok(1, "a"), tok(2, "b")); err != nil {
			t.Fatal(err)
		}
		c, err := s.Begin(ctx, "r", "u1")
		if err != nil || c != (streams.Cursor{Attempt: 2, Last: 2}) {
			t.Fatalf("second begin: %+v %v", c, err)
		}
		if err := s.Append(ctx, "r", done(3)); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Begin(ctx, "r", "u1"); err != nil || !c.Finished || c.Last != 3 {
			t.Fatalf("begin after done: %+v %v", c, err)
		}
	})
	t.Run("start creates a stream as its first attempt, with or without entries", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.Start(ctx, "s", "u1", tok(1, "a"), tok(2, "b")); err != nil {
			t.Fatal(err)
		}
		if o, err := s.Owner(ctx, "s"); err != nil || o != "u1" {
			t.Fatalf("owner %q %v", o, err)
		}
		// Again by its owner, it only appends.
		if err := s.Start(ctx, "s", "u1", tok(3, "c")); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx, "s", "u1", tok(3, "again")); !errors.Is(err, streams.ErrConflict) {
			t.Fatalf("repeated number: %v", err)
		}
		if err := s.Start(ctx, "s", "u2", tok(4, "d")); !errors.Is(err, streams.ErrConflict) {
			t.Fatalf("start by another owner: %v", err)
		}
		if err := s.Append(ctx, "s", done(4)); err != nil {
			t.Fatal(err)
		}
		got, err := collect(ctx, s, "s", 0)
		if err != nil || !equal(seqs(got), []int64{1, 2, 3, 4}) || got[2].Delta != "c" {
			t.Fatalf("entries %+v %v", got, err)
		}
		if c, err := s.Begin(ctx, "s", "u1"); err != nil || c != (streams.Cursor{Attempt: 2, Last: 4, Finished: true}) {
			t.Fatalf("begin after start: %+v %v", c, err)
		}

		if err := s.Start(ctx, "empty", "u1"); err != nil {
			t.Fatal(err)
		}
		if o, err := s.Owner(ctx, "empty"); err != nil || o != "u1" {
			t.Fatalf("owner of an empty start %q %v", o, err)
		}
		if err := s.Start(ctx, "empty", "u1", tok(1, "a")); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Begin(ctx, "empty", "u1"); err != nil || c != (streams.Cursor{Attempt: 2, Last: 1}) {
			t.Fatalf("begin after an empty start: %+v %v", c, err)
		}

		// A batch that does not start at 1 is refused and creates nothing.
		if err := s.Start(ctx, "gap", "u1", tok(2, "x")); !errors.Is(err, streams.ErrConflict) {
			t.Fatalf("start at 2: %v", err)
		}
		if _, err := s.Owner(ctx, "gap"); !errors.Is(err, streams.ErrNotFound) {
			t.Fatalf("a refused start created its stream: %v", err)
		}
	})
	t.Run("followers get live entries in order", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if _, err := s.Begin(ctx, "live", "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "live", tok(1, "a")); err != nil {
			t.Fatal(err)
		}
		const readers = 5
		var wg sync.WaitGroup
		results := make([][]int64, readers)
		errs := make([]error, readers)
		started := make(chan struct{}, readers)
		for i := range readers {
			wg.Go(func() {
				first := true
				errs[i] = s.Follow(ctx, "live", int64(i%2), time.Time{}, func(e streams.Entry) error {
					if first {
						first = false
						started <- struct{}{}
					}
					results[i] = append(results[i], e.Seq)
					return nil
				})
			})
		}
		// Readers after 0 have seen entry 1; readers after 1 have nothing yet,
		// so only wait for the first kind.
		for range (readers + 1) / 2 {
			<-started
		}
		const n = 300
		for seq := int64(2); seq <= n; seq++ {
			if err := s.Append(ctx, "live", tok(seq, "x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Append(ctx, "live", done(n+1)); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i := range readers {
			want := make([]int64, 0, n+1)
			for seq := int64(i%2) + 1; seq <= n+1; seq++ {
				want = append(want, seq)
			}
			if errs[i] != nil || !equal(results[i], want) {
				t.Fatalf("reader %d: err %v, got %d entries (first %v)", i, errs[i], len(results[i]), results[i][:min(5, len(results[i]))])
			}
		}
	})
	t.Run("a stream not stored yet is awaited until a time", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		type result struct {
			got []streams.Entry
			err error
		}
		await := func(id string, until time.Time) chan result {
			out := make(chan result, 1)
			go func() {
				var got []streams.Entry
				err := s.Follow(ctx, id, 0, until, func(e streams.Entry) error {
					got = append(got, e)
					return nil
				})
				out <- result{got, err}
			}()
			return out
		}
		// Created with entries, and created empty then appended to.
		withEntries := await("later", time.Now().Add(20*time.Second))
		empty := await("empty-later", time.Now().Add(20*time.Second))
		time.Sleep(50 * time.Millisecond) // the followers are waiting
		if err := s.Start(ctx, "later", "u1", tok(1, "a"), done(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx, "empty-later", "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "empty-later", tok(1, "b"), done(2)); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]chan result{"with entries": withEntries, "created empty": empty} {
			select {
			case r := <-c:
				if r.err != nil || !equal(seqs(r.got), []int64{1, 2}) {
					t.Fatalf("%s: %v %v", name, seqs(r.got), r.err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s: the awaited stream was not followed", name)
			}
		}
		// A stream that does not appear: ErrNotFound at until, not before.
		start := time.Now()
		select {
		case r := <-await("never", start.Add(400*time.Millisecond)):
			if waited := time.Since(start); !errors.Is(r.err, streams.ErrNotFound) || waited < 350*time.Millisecond {
				t.Fatalf("never created: %v after %v", r.err, waited)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("awaiting did not end at its time")
		}
		// A time past awaits nothing.
		if _, err := collect(ctx, s, "never", 0); !errors.Is(err, streams.ErrNotFound) {
			t.Fatalf("follow without until: %v", err)
		}
	})
	t.Run("follow ends with its context", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		if _, err := s.Begin(ctx, "c", "u1"); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { _, err := collect(ctx, s, "c", 0); errc <- err }()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("follow: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("follow did not end with its context")
		}
	})
}

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T) streams.Store { return streams.NewMemory(streams.MemoryOptions{}) })
}

func TestRedisContract(t *testing.T) {
	client := testenv.Redis(t)
	runContract(t, func(t *testing.T) streams.Store {
		return streams.NewRedis(client, streams.RedisOptions{Prefix: testenv.Prefix("streams"), Poll: 200 * time.Millisecond})
	})
}

// TestRedisAwaitsWithoutPolling: a follower awaiting a stream not stored
// yet gets its entries as they are added, without waiting for its Poll.
func TestRedisAwaitsWithoutPolling(t *testing.T) {
	s := streams.NewRedis(testenv.Redis(t), streams.RedisOptions{Prefix: testenv.Prefix("streams"), Poll: time.Minute})
	ctx := t.Context()
	out := make(chan error, 1)
	go func() {
		out <- s.Follow(ctx, "soon", 0, time.Now().Add(time.Minute), func(streams.Entry) error { return nil })
	}()
	time.Sleep(100 * time.Millisecond) // the follower is waiting
	if err := s.Start(ctx, "soon", "u1", tok(1, "a"), done(2)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-out:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower waited for its poll")
	}
}

// Streams expire TTL after their last append.
func TestMemoryExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := streams.NewMemory(streams.MemoryOptions{TTL: time.Minute, Clock: clock})
	ctx := t.Context()
	if _, err := s.Begin(ctx, "e", "u1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	if err := s.Append(ctx, "e", tok(1, "a")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	if _, err := s.Owner(ctx, "e"); err != nil {
		t.Fatalf("renewed stream gone: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if _, err := s.Owner(ctx, "e"); !errors.Is(err, streams.ErrNotFound) {
		t.Fatalf("expired stream: %v", err)
	}
}

// A Redis stream keeps its last MaxLen entries and the rest of the batch
// holding the first of them (trimmed by number), numbered as appended, and
// a reader after any kept entry gets the rest.
func TestRedisBound(t *testing.T) {
	const maxLen, batch, n = 200, 7, 2000
	s := streams.NewRedis(testenv.Redis(t), streams.RedisOptions{Prefix: testenv.Prefix("streams"), MaxLen: maxLen})
	ctx := t.Context()
	if _, err := s.Begin(ctx, "b", "u1"); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= n; seq += batch {
		var es []streams.Entry
		for i := seq; i < seq+batch && i <= n; i++ {
			es = append(es, tok(i, "x"))
		}
		if err := s.Append(ctx, "b", es...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(ctx, "b", done(n+1)); err != nil {
		t.Fatal(err)
	}
	got, err := collect(ctx, s, "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	kept := seqs(got)
	if len(kept) < maxLen || len(kept) >= maxLen+batch {
		t.Fatalf("kept %d entries, want %d and less than a batch more", len(kept), maxLen)
	}
	for i, seq := range kept {
		if want := int64(n+2-len(kept)) + int64(i); seq != want {
			t.Fatalf("entry %d is %d, want %d", i, seq, want)
		}
	}
	after := kept[len(kept)/2]
	got, err = collect(ctx, s, "b", after)
	if err != nil || len(got) != int(n+1-after) || got[0].Seq != after+1 {
		t.Fatalf("after %d: %d entries from %v, err %v", after, len(got), seqs(got[:1]), err)
	}
	if err := s.Append(ctx, "b", tok(n+1, "x")); !errors.Is(err, streams.ErrConflict) {
		t.Fatalf("repeated number: %v", err)
	}
}
