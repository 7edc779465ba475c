package workflows

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/kowai/kowai/signatures/lm"
)

// Retry is a task's retry policy. The zero value runs a task once.
type Retry struct {
	// Attempts is the most executions of the task, the first included
	// (0 or 1: no retry). An attempt in flight when a node died counts.
	Attempts int
	// Initial is the delay before the first retry (default 1s).
	Initial time.Duration
	// Multiplier grows the delay after each retry (default 2).
	Multiplier float64
	// Max caps the delay (default 1m).
	Max time.Duration
	// Jitter is the fraction of each delay that is random, in [0, 1]: a
	// delay d becomes a uniform value in [d*(1-Jitter), d].
	Jitter float64
}

// delay returns the wait after failed attempt n (1-based), with u in [0,1)
// drawing the jitter.
func (r Retry) delay(n int, u float64) time.Duration {
	initial, mult, maxd := r.Initial, r.Multiplier, r.Max
	if initial <= 0 {
		initial = time.Second
	}
	if mult < 1 {
		mult = 2
	}
	if maxd <= 0 {
		maxd = time.Minute
	}
	d := float64(initial) * math.Pow(mult, float64(n-1))
	if d > float64(maxd) {
		d = float64(maxd)
	}
	j := min(max(r.Jitter, 0), 1)
	return time.Duration(d * (1 - j*u))
}

// TaskOption configures one task.
type TaskOption func(*taskConfig)

type taskConfig struct {
	retry      Retry
	timeout    time.Duration
	retryable  func(error) bool
	cacheKey   any
	cacheTTL   time.Duration
	cacheInput bool
	// durableAttempts makes each attempt's start durable before it runs.
	durableAttempts bool
}

// WithRetry sets the task's retry policy.
func WithRetry(r Retry) TaskOption { return func(c *taskConfig) { c.retry = r } }

// WithTimeout bounds each attempt of the task; an attempt that times out is
// retryable.
func WithTimeout(d time.Duration) TaskOption { return func(c *taskConfig) { c.timeout = d } }

// WithDurableAttempts records each attempt of a plain task durably before it
// runs, as agent, program and child steps always are, so that an attempt cut
// short by a crash is counted. It costs one commit per attempt; without it a
// task's attempt is recorded with the run's next commit, so a crash during
// the attempt may leave that one attempt uncounted (it is still retried).
func WithDurableAttempts() TaskOption { return func(c *taskConfig) { c.durableAttempts = true } }

// RetryIf replaces the default classification (IsRetryable) for this task.
func RetryIf(f func(error) bool) TaskOption { return func(c *taskConfig) { c.retryable = f } }

// WithCache reuses a result of this task name computed for the same key
// within ttl, across runs (Prefect's cache_key_fn). The key is hashed as
// JSON; Map adds each item to it. Needs a Cache in Services.
func WithCache(key any, ttl time.Duration) TaskOption {
	return func(c *taskConfig) { c.cacheKey, c.cacheTTL, c.cacheInput = key, ttl, true }
}

// permanent marks an error as not retryable.
type permanent struct{ err error }

func (p permanent) Error() string   { return p.err.Error() }
func (p permanent) Unwrap() error   { return p.err }
func (p permanent) Retryable() bool { return false }

// Permanent wraps err so that no retry policy retries it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Retryable wraps err so that it is retried even where the default
// classification would not.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return transient{err}
}

type transient struct{ err error }

func (t transient) Error() string   { return t.err.Error() }
func (t transient) Unwrap() error   { return t.err }
func (t transient) Retryable() bool { return true }

// IsRetryable is the default classification: an error that says
// (Retryable() bool) decides; cancellation, validation, budget and other
// request errors of a model are permanent; timeouts, model outages, rate
// limits and plain errors are retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	for _, p := range []error{lm.ErrBudgetExceeded, lm.ErrBadRequest, lm.ErrAuth, lm.ErrContentFiltered, lm.ErrConfig,
		ErrNondeterministic, ErrTooManyTasks, ErrSuspended} {
		if errors.Is(err, p) {
			return false
		}
	}
	return true
}
