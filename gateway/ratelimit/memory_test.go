package ratelimit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
)

func TestMemorySweepsRefilledKeys(t *testing.T) {
	clock := newFakeClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Clock: clock.Now, SweepInterval: time.Minute})
	limit := ratelimit.PerSecond(10)
	for i := range 1000 {
		if _, err := m.Allow(t.Context(), "k"+strconv.Itoa(i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 1000 {
		t.Fatalf("Len = %d, want 1000", got)
	}
	clock.Advance(time.Minute)
	// Touch every shard so each one runs its sweep.
	for i := range 1000 {
		if _, err := m.Allow(t.Context(), "fresh"+strconv.Itoa(i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 1000 {
		t.Fatalf("Len after sweep = %d, want only the 1000 fresh keys", got)
	}
}

func TestMemoryBoundsKeys(t *testing.T) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Clock: newFakeClock().Now, MaxKeys: 640})
	limit := ratelimit.PerHour(1)
	for i := range 10_000 {
		if _, err := m.Allow(t.Context(), "k"+strconv.Itoa(i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got > 640 {
		t.Fatalf("Len = %d, want at most MaxKeys 640", got)
	}
}
