package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
)

// fakeClock is a manually advanced clock shared by a limiter and its test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// step is one action of a contract scenario: advance the clock, then make
// one request and compare the whole result.
type step struct {
	advance time.Duration
	want    ratelimit.Result
}

func allowed(limit, remaining int, reset time.Duration) ratelimit.Result {
	return ratelimit.Result{Allowed: true, Limit: limit, Remaining: remaining, ResetAfter: reset}
}

func denied(limit int, reset, retry time.Duration) ratelimit.Result {
	return ratelimit.Result{Limit: limit, ResetAfter: reset, RetryAfter: retry}
}

// runContract runs the behaviour every Limiter must share. newLimiter returns
// a fresh limiter reading the given clock and isolated from other calls.
func runContract(t *testing.T, newLimiter func(t *testing.T, clock func() time.Time) ratelimit.Limiter) {
	t.Helper()
	ms := time.Millisecond
	scenarios := []struct {
		name  string
		limit ratelimit.Limit
		steps []step
	}{
		{"burst then deny", ratelimit.PerSecond(3), []step{
			{0, allowed(3, 2, 333333*time.Microsecond)},
			{0, allowed(3, 1, 666666*time.Microsecond)},
			{0, allowed(3, 0, 999999*time.Microsecond)},
			{0, denied(3, 999999*time.Microsecond, 333333*time.Microsecond)},
		}},
		{"refill one at a time", ratelimit.PerSecond(10), []step{
			{0, allowed(10, 9, 100*ms)},
			{0, allowed(10, 8, 200*ms)},
			{0, allowed(10, 7, 300*ms)},
			{0, allowed(10, 6, 400*ms)},
			{0, allowed(10, 5, 500*ms)},
			{0, allowed(10, 4, 600*ms)},
			{0, allowed(10, 3, 700*ms)},
			{0, allowed(10, 2, 800*ms)},
			{0, allowed(10, 1, 900*ms)},
			{0, allowed(10, 0, 1000*ms)},
			{0, denied(10, 1000*ms, 100*ms)},
			{40 * ms, denied(10, 960*ms, 60*ms)},
			{60 * ms, allowed(10, 0, 1000*ms)},
			{0, denied(10, 1000*ms, 100*ms)},
		}},
		{"idle key refills to full burst", ratelimit.Limit{Rate: 2, Period: time.Second, Burst: 2}, []step{
			{0, allowed(2, 1, 500*ms)},
			{0, allowed(2, 0, 1000*ms)},
			{0, denied(2, 1000*ms, 500*ms)},
			{10 * time.Second, allowed(2, 1, 500*ms)},
		}},
		{"burst above rate", ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 3}, []step{
			{0, allowed(3, 2, 1000*ms)},
			{0, allowed(3, 1, 2000*ms)},
			{0, allowed(3, 0, 3000*ms)},
			{0, denied(3, 3000*ms, 1000*ms)},
			{2500 * ms, allowed(3, 1, 1500*ms)},
		}},
		{"burst of one is strict spacing", ratelimit.Limit{Rate: 120, Period: time.Minute, Burst: 1}, []step{
			{0, allowed(1, 0, 500*ms)},
			{499 * ms, denied(1, 1*ms, 1*ms)},
			{1 * ms, allowed(1, 0, 500*ms)},
		}},
		{"hourly window", ratelimit.PerHour(2), []step{
			{0, allowed(2, 1, 30*time.Minute)},
			{0, allowed(2, 0, time.Hour)},
			{0, denied(2, time.Hour, 30*time.Minute)},
			{29 * time.Minute, denied(2, 31*time.Minute, time.Minute)},
			{time.Minute, allowed(2, 0, time.Hour)},
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newLimiter(t, clock.Now)
			for i, s := range sc.steps {
				clock.Advance(s.advance)
				got, err := l.Allow(t.Context(), "k", sc.limit)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got != s.want {
					t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
				}
			}
		})
	}

	t.Run("keys are independent", func(t *testing.T) {
		clock := newFakeClock()
		l := newLimiter(t, clock.Now)
		limit := ratelimit.Limit{Rate: 1, Period: time.Minute}
		for _, key := range []string{"a", "b", "c"} {
			if r, err := l.Allow(t.Context(), key, limit); err != nil || !r.Allowed {
				t.Fatalf("first request for %s: %+v, %v", key, r, err)
			}
		}
		if r, err := l.Allow(t.Context(), "a", limit); err != nil || r.Allowed {
			t.Fatalf("second request for a: %+v, %v", r, err)
		}
	})

	t.Run("invalid limit", func(t *testing.T) {
		l := newLimiter(t, newFakeClock().Now)
		for _, bad := range []ratelimit.Limit{{}, {Rate: 1}, {Period: time.Second}, {Rate: 1, Period: time.Second, Burst: -1}, {Rate: 2, Period: time.Microsecond}} {
			if _, err := l.Allow(t.Context(), "k", bad); err == nil {
				t.Errorf("Allow with %+v: want error", bad)
			}
		}
	})

	t.Run("concurrent requests never exceed the burst", func(t *testing.T) {
		clock := newFakeClock()
		l := newLimiter(t, clock.Now)
		limit := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 25}
		var mu sync.Mutex
		granted := 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					r, err := l.Allow(context.Background(), "shared", limit)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Allowed {
						mu.Lock()
						granted++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if granted != 25 {
			t.Fatalf("granted %d of 80 requests, want exactly the burst of 25", granted)
		}
	})
}

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T, clock func() time.Time) ratelimit.Limiter {
		return ratelimit.NewMemory(ratelimit.MemoryOptions{Clock: clock})
	})
}
