package supervisors

import (
	"errors"
	"math"
	"testing"
	"time"
)

// fixedRand is a random source that always returns r.
func fixedRand(r float64) func() float64 { return func() float64 { return r } }

// belowOne is the largest value a random source may return.
var belowOne = math.Nextafter(1, 0)

func TestBackoffDelayGrowthAndCap(t *testing.T) {
	tests := []struct {
		name    string
		backoff Backoff
		attempt int
		want    time.Duration
	}{
		{"attempt 0 counts as 1", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, 0, time.Second},
		{"first", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, 1, time.Second},
		{"doubles", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, 4, 8 * time.Second},
		{"last below cap", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, 6, 32 * time.Second},
		{"capped", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, 7, time.Minute},
		{"huge attempt saturates", Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterNone}, math.MaxInt, time.Minute},
		{"multiplier 1.5", Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1.5, Jitter: JitterNone}, 3, 2250 * time.Millisecond},
		{"multiplier 1 is constant", Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1, Jitter: JitterNone}, 50, time.Second},
		{"defaults first", Backoff{Jitter: JitterNone}, 1, DefaultInitialBackoff},
		{"defaults sixth", Backoff{Jitter: JitterNone}, 6, 6400 * time.Millisecond},
		{"defaults capped", Backoff{Jitter: JitterNone}, 7, DefaultMaxBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.backoff.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	base := Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	tests := []struct {
		name   string
		jitter Jitter
		// lo and hi bound the delay as fractions of the un-jittered delay:
		// lo inclusive, hi exclusive.
		lo, hi float64
	}{
		{"equal", JitterEqual, 0.5, 1},
		{"full", JitterFull, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for attempt := 1; attempt <= 12; attempt++ {
				b := base
				b.Jitter = JitterNone
				ceiling := float64(b.Delay(attempt))
				lo, hi := time.Duration(tt.lo*ceiling), time.Duration(tt.hi*ceiling)

				b.Jitter = tt.jitter
				b.Rand = fixedRand(0)
				if got := b.Delay(attempt); got != lo {
					t.Errorf("attempt %d, rand 0: Delay = %s, want the lower bound %s", attempt, got, lo)
				}
				b.Rand = fixedRand(belowOne)
				if got := b.Delay(attempt); got >= hi || got < hi-time.Microsecond {
					t.Errorf("attempt %d, rand just below 1: Delay = %s, want just below %s", attempt, got, hi)
				}
				b.Rand = nil
				for range 200 {
					if got := b.Delay(attempt); got < lo || got >= hi {
						t.Fatalf("attempt %d, default random source: Delay = %s, want in [%s, %s)", attempt, got, lo, hi)
					}
				}
			}
		})
	}
}

func TestBackoffJitterUsesRandom(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute, Jitter: JitterFull, Rand: fixedRand(0.25)}
	if got, want := b.Delay(3), time.Second; got != want {
		t.Errorf("full jitter, rand 0.25, ceiling 4s: Delay = %s, want %s", got, want)
	}
	b.Jitter = JitterEqual
	if got, want := b.Delay(3), 2500*time.Millisecond; got != want {
		t.Errorf("equal jitter, rand 0.25, ceiling 4s: Delay = %s, want %s", got, want)
	}
}

func TestBackoffValidate(t *testing.T) {
	tests := []struct {
		name    string
		backoff Backoff
		ok      bool
	}{
		{"zero value", Backoff{}, true},
		{"explicit", Backoff{Initial: time.Millisecond, Max: time.Second, Multiplier: 3, Jitter: JitterFull}, true},
		{"negative initial", Backoff{Initial: -time.Second}, false},
		{"negative max", Backoff{Max: -time.Second}, false},
		{"multiplier below 1", Backoff{Multiplier: 0.5}, false},
		{"NaN multiplier", Backoff{Multiplier: math.NaN()}, false},
		{"infinite multiplier", Backoff{Multiplier: math.Inf(1)}, false},
		{"max below initial", Backoff{Initial: time.Second, Max: time.Millisecond}, false},
		{"max below default initial", Backoff{Max: time.Millisecond}, false},
		{"unknown jitter", Backoff{Jitter: Jitter(9)}, false},
		{"negative jitter", Backoff{Jitter: Jitter(-1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.backoff.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidOptions", err)
			}
		})
	}
}

func TestRestartBudgetValidate(t *testing.T) {
	tests := []struct {
		name   string
		budget RestartBudget
		ok     bool
	}{
		{"zero value", RestartBudget{}, true},
		{"explicit", RestartBudget{MaxRestarts: 3, Window: time.Second}, true},
		{"negative restarts", RestartBudget{MaxRestarts: -1}, false},
		{"negative window", RestartBudget{Window: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.budget.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidOptions", err)
			}
		})
	}
}
