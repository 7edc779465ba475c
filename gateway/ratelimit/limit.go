package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors returned by this package.
var (
	// ErrInvalidLimit means a Limit or a limit string is malformed or out of range.
	ErrInvalidLimit = errors.New("ratelimit: invalid limit")
	// ErrLimiter means the limiter's backend failed and no decision was made.
	ErrLimiter = errors.New("ratelimit: limiter failed")
)

// Limiter decides whether one more request under key fits limit. The cost of
// a request is always one. Implementations are safe for concurrent use; a
// denied request does not consume anything.
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}

// LimiterFunc adapts a function to Limiter.
type LimiterFunc func(ctx context.Context, key string, limit Limit) (Result, error)

// Allow calls f.
func (f LimiterFunc) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	return f(ctx, key, limit)
}

// Limit is a sustained rate of Rate requests per Period, with up to Burst
// requests allowed back to back when the key has been idle.
type Limit struct {
	// Rate is the number of requests refilled per Period; it must be positive.
	Rate int
	// Period is the window Rate refers to; it must be positive.
	Period time.Duration
	// Burst is the largest number of requests allowed at once; zero means Rate.
	Burst int
}

// PerSecond returns a limit of n requests per second with a burst of n.
func PerSecond(n int) Limit { return Limit{Rate: n, Period: time.Second} }

// PerMinute returns a limit of n requests per minute with a burst of n.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute} }

// PerHour returns a limit of n requests per hour with a burst of n.
func PerHour(n int) Limit { return Limit{Rate: n, Period: time.Hour} }

// limitForm is quoted by every parse error so a user can fix the value.
const limitForm = `N/s, N/m or N/h with N a positive integer, e.g. "120/m"`

// ParseLimit parses "N/s", "N/m" or "N/h" (for example "120/m") into a Limit
// whose burst equals N.
func ParseLimit(s string) (Limit, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Limit{}, fmt.Errorf("%w: %q: want %s", ErrInvalidLimit, s, limitForm)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return Limit{}, fmt.Errorf("%w: %q: want %s", ErrInvalidLimit, s, limitForm)
	}
	var period time.Duration
	switch unit {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	default:
		return Limit{}, fmt.Errorf("%w: %q: unknown unit %q: want %s", ErrInvalidLimit, s, unit, limitForm)
	}
	l := Limit{Rate: n, Period: period}
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// String renders the limit in the form ParseLimit accepts when it has one,
// adding the burst when it differs from the rate.
func (l Limit) String() string {
	unit := l.Period.String()
	switch l.Period {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	s := strconv.Itoa(l.Rate) + "/" + unit
	if l.Burst != 0 && l.Burst != l.Rate {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// Validate reports whether the limit is usable. The interval between two
// refills (Period/Rate) must be at least one microsecond, the resolution of
// the Redis limiter.
func (l Limit) Validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("%w: rate %d must be positive", ErrInvalidLimit, l.Rate)
	case l.Period <= 0:
		return fmt.Errorf("%w: period %s must be positive", ErrInvalidLimit, l.Period)
	case l.Burst < 0:
		return fmt.Errorf("%w: burst %d must not be negative", ErrInvalidLimit, l.Burst)
	case l.Period/time.Duration(l.Rate) < time.Microsecond:
		return fmt.Errorf("%w: %d per %s is faster than one per microsecond", ErrInvalidLimit, l.Rate, l.Period)
	}
	return nil
}

// params returns the emission interval in microseconds and the effective
// burst, the two numbers GCRA works with.
func (l Limit) params() (interval, burst int64) {
	interval = l.Period.Microseconds() / int64(l.Rate)
	if l.Burst == 0 {
		return interval, int64(l.Rate)
	}
	return interval, int64(l.Burst)
}

// Result is the decision for one request.
type Result struct {
	// Allowed reports whether the request fits the limit.
	Allowed bool
	// Limit is the burst: the most requests the key may make at once.
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// ResetAfter is how long until the key is back to its full burst.
	ResetAfter time.Duration
	// RetryAfter is how long until a denied request would be allowed; zero
	// when Allowed.
	RetryAfter time.Duration
}

// gcra applies the generic cell rate algorithm in integer microseconds. The
// Lua script in redis.go mirrors it line for line, so both limiters decide
// identically for the same clock. tat is the stored theoretical
// arrival time, or a value <= now when the key is new. It returns the new tat
// to store when the request is allowed.
func gcra(tat, now, interval, burst int64) (newTAT int64, allowed bool, remaining, resetAfter, retryAfter int64) {
	if tat < now {
		tat = now
	}
	newTAT = tat + interval
	allowAt := newTAT - burst*interval
	if now < allowAt {
		return tat, false, 0, tat - now, allowAt - now
	}
	return newTAT, true, (now - allowAt) / interval, newTAT - now, 0
}
