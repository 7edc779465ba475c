package streams_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/streams"
)

// A stream keeps its last MaxLen entries, numbered as appended, however
// often it passed its bound.
func TestMemoryBound(t *testing.T) {
	const maxLen = 5
	s := streams.NewMemory(streams.MemoryOptions{MaxLen: maxLen})
	ctx := t.Context()
	if _, err := s.Begin(ctx, "b", "u1"); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 4*maxLen+2; seq++ {
		if err := s.Append(ctx, "b", tok(seq, "x")); err != nil {
			t.Fatal(err)
		}
		if seq%3 != 0 {
			continue
		}
		// Read the kept entries from the start, and after a kept one.
		for _, after := range []int64{0, seq - 2} {
			got := followKept(t, s, "b", after, seq)
			var want []int64
			for n := max(seq-maxLen+1, after+1); n <= seq; n++ {
				want = append(want, n)
			}
			if !equal(got, want) {
				t.Fatalf("after %d appends, follow after %d: got %v, want %v", seq, after, got, want)
			}
		}
	}
	last := int64(4*maxLen + 3)
	if err := s.Append(ctx, "b", tok(last, "x"), done(last+1)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Begin(ctx, "b", "u1")
	if err != nil || c.Last != last+1 || !c.Finished {
		t.Fatalf("begin after done: %+v %v", c, err)
	}
	if err := s.Append(ctx, "b", tok(last, "x")); err == nil {
		t.Fatal("an append that repeats a number was accepted")
	}
}

// followKept reads the entries of an unfinished stream after seq after, up
// to seq last.
func followKept(t *testing.T, s streams.Store, id string, after, last int64) []int64 {
	t.Helper()
	var got []int64
	if after >= last {
		return nil
	}
	err := s.Follow(t.Context(), id, after, time.Time{}, func(e streams.Entry) error {
		got = append(got, e.Seq)
		if e.Seq == last {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("follow: %v", err)
	}
	return got
}

// errStop ends a Follow that has what it wants.
var errStop = errors.New("stop")

// BenchmarkMemoryAppendAtBound: one-token appends to a stream that holds
// DefaultMaxLen entries (every append drops one) against the same number
// of appends to a new stream that stays below its bound, in the same run.
// Goal: x-vs-baseline <= 2 (an append at the bound must not copy the
// stream).
func BenchmarkMemoryAppendAtBound(b *testing.B) {
	ctx := b.Context()
	const perRound = streams.DefaultMaxLen / 2
	appendN := func(s *streams.Memory, seq *int64) time.Duration {
		start := time.Now()
		for range perRound {
			*seq++
			if err := s.Append(ctx, "s", tok(*seq, "x")); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	full := streams.NewMemory(streams.MemoryOptions{})
	if _, err := full.Begin(ctx, "s", "u1"); err != nil {
		b.Fatal(err)
	}
	var fullSeq int64
	for range 2 {
		appendN(full, &fullSeq)
	}
	var fullT, freeT time.Duration
	for b.Loop() {
		fullT += appendN(full, &fullSeq)
		free := streams.NewMemory(streams.MemoryOptions{})
		if _, err := free.Begin(ctx, "s", "u1"); err != nil {
			b.Fatal(err)
		}
		var freeSeq int64
		freeT += appendN(free, &freeSeq)
	}
	b.ReportMetric(float64(fullT)/float64(freeT), "x-vs-baseline")
}
