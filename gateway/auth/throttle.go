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
	// PerAccountAddress limits login attempts on one account from one client
	// address; default 10 per 15 minutes (a burst of 10, then one every 90
	// seconds). It is what stops a guesser.
	PerAccountAddress ratelimit.Limit
	// PerAccount limits login attempts on one account from all addresses
	// together; default 100 per 15 minutes. It is a ceiling for guessers
	// spread over many addresses, set well above PerAccountAddress so that
	// one address cannot lock the owner out.
	PerAccount ratelimit.Limit
	// PerIP limits login attempts per client address, whatever the account;
	// default a burst of 30, then one every 2 seconds.
	PerIP ratelimit.Limit
}

// Throttle limits password login attempts per (account, client address),
// per account and per client address. Each attempt, successful or not,
// spends one unit of each bucket before the password is checked, so a
// guesser is slowed whether or not it guesses right and the check cannot be
// used to learn anything; GCRA refills the buckets smoothly instead of
// locking an account for a fixed period. A guesser at one address exhausts
// only its own (account, address) bucket, never the owner's; it takes
// PerAccount attempts from many addresses to delay the owner's password
// logins, and even then never their refreshes or Appwrite sign-in.
type Throttle struct {
	cfg ThrottleConfig
}

// NewThrottle returns a Throttle; it fails with ErrConfig without a Limiter
// or with an invalid limit.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if cfg.Limiter == nil {
		return nil, fmt.Errorf("%w: throttle needs a limiter", ErrConfig)
	}
	if cfg.PerAccountAddress == (ratelimit.Limit{}) {
		cfg.PerAccountAddress = ratelimit.Limit{Rate: 10, Period: 15 * time.Minute, Burst: 10}
	}
	if cfg.PerAccount == (ratelimit.Limit{}) {
		cfg.PerAccount = ratelimit.Limit{Rate: 100, Period: 15 * time.Minute, Burst: 100}
	}
	if cfg.PerIP == (ratelimit.Limit{}) {
		cfg.PerIP = ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 30}
	}
	for _, l := range []ratelimit.Limit{cfg.PerAccountAddress, cfg.PerAccount, cfg.PerIP} {
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

// AttemptFrom spends one attempt from ip, whatever the account, returning a
// *ThrottledError when the address's bucket is empty. Login calls it before
// looking the account up, so a client spraying many accounts is stopped
// before it costs a lookup and does not drain their buckets.
func (t *Throttle) AttemptFrom(ctx context.Context, ip string) error {
	return t.spend(ctx, "login:ip:"+ip, t.cfg.PerIP)
}

// AttemptOn spends one attempt on account from ip, returning a
// *ThrottledError when the (account, address) or the account bucket is
// empty. account names the account the login resolves to: its user ID, or
// for an address without an account the canonical email, so that every
// spelling of one account shares its buckets. The (account, address)
// bucket is checked first: an address that has used up its own attempts
// spends nothing of the account's shared ceiling.
func (t *Throttle) AttemptOn(ctx context.Context, account, ip string) error {
	// An address never contains "|"; the account comes last, so the key is
	// unambiguous whatever the account string holds.
	if err := t.spend(ctx, "login:account-ip:"+ip+"|"+account, t.cfg.PerAccountAddress); err != nil {
		return err
	}
	return t.spend(ctx, "login:account:"+account, t.cfg.PerAccount)
}

// Attempt is AttemptFrom followed by AttemptOn, for a caller that knows
// the account before it starts, such as a password confirmation by a
// signed-in user: pass AccountKey(userID) so it shares the buckets of that
// user's logins.
func (t *Throttle) Attempt(ctx context.Context, account, ip string) error {
	if err := t.AttemptFrom(ctx, ip); err != nil {
		return err
	}
	return t.AttemptOn(ctx, account, ip)
}

// AccountKey is the throttle's name for the account of user userID.
func AccountKey(userID string) string { return "user:" + userID }

func (t *Throttle) spend(ctx context.Context, key string, limit ratelimit.Limit) error {
	res, err := t.cfg.Limiter.Allow(ctx, key, limit)
	if err != nil {
		return fmt.Errorf("auth: login throttle: %w", err)
	}
	if !res.Allowed {
		return &ThrottledError{RetryAfter: res.RetryAfter}
	}
	return nil
}
