package auth

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
)

// ThrottleConfig configures NewThrottle.
type ThrottleConfig struct {
	// Limiter holds the attempt counters; use the Redis limiter so every
	// node counts together. Required.
	Limiter ratelimit.Limiter
	// PerAccount limits login attempts per email; default a burst of 10,
	// then one every 3 minutes (20 per hour).
	PerAccount ratelimit.Limit
	// PerIP limits login attempts per client address; default a burst of 30,
	// then one every 2 seconds.
	PerIP ratelimit.Limit
}

// Throttle limits password login attempts per account and per client
// address. Each attempt, successful or not, spends one unit of both
// buckets before the password is checked, so a guesser is slowed whether or
// not it guesses right and the check cannot be used to learn anything;
// GCRA refills the buckets smoothly instead of locking an account for a
// fixed period. An attacker can still exhaust one account's bucket, which
// only delays that account's password logins, never its refreshes or
// Appwrite sign-in.
type Throttle struct {
	cfg ThrottleConfig
}

// NewThrottle returns a Throttle; it fails with ErrConfig without a Limiter
// or with an invalid limit.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if cfg.Limiter == nil {
		return nil, fmt.Errorf("%w: throttle needs a limiter", ErrConfig)
	}
	if cfg.PerAccount == (ratelimit.Limit{}) {
		cfg.PerAccount = ratelimit.Limit{Rate: 20, Period: time.Hour, Burst: 10}
	}
	if cfg.PerIP == (ratelimit.Limit{}) {
		cfg.PerIP = ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 30}
	}
	for _, l := range []ratelimit.Limit{cfg.PerAccount, cfg.PerIP} {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("%w: throttle: %w", ErrConfig, err)
		}
	}
	return &Throttle{cfg: cfg}, nil
}

// ThrottledError is returned when an attempt is refused; it wraps
// ErrThrottled.
type ThrottledError struct {
	// RetryAfter is how long until the next attempt would be allowed.
	RetryAfter time.Duration
}

// Error implements error.
func (e *ThrottledError) Error() string {
	return ErrThrottled.Error() + "; retry after " + strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10) + " s"
}

// Unwrap makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// Attempt spends one attempt for email (normalized) from ip, returning a
// *ThrottledError when either bucket is empty. The address is checked first
// so a client spraying many accounts does not drain their buckets.
func (t *Throttle) Attempt(ctx context.Context, email, ip string) error {
	checks := []struct {
		key   string
		limit ratelimit.Limit
	}{
		{"login:ip:" + ip, t.cfg.PerIP},
		{"login:account:" + email, t.cfg.PerAccount},
	}
	for _, c := range checks {
		res, err := t.cfg.Limiter.Allow(ctx, c.key, c.limit)
		if err != nil {
			return fmt.Errorf("auth: login throttle: %w", err)
		}
		if !res.Allowed {
			return &ThrottledError{RetryAfter: res.RetryAfter}
		}
	}
	return nil
}
