package lm

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"
)

// RetryPolicy bounds the retry layer.
type RetryPolicy struct {
	// MaxAttempts is the number of calls including the first (default 3).
	MaxAttempts int
	// BaseDelay is the backoff ceiling of the first retry; it doubles per
	// retry up to MaxDelay (defaults 500ms and 30s). The actual wait is
	// drawn uniformly from [0, ceiling) ("full jitter").
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter is the longest Retry-After the layer waits for; a
	// provider asking for more gets no retry and the error goes up (to the
	// fallback chain). Default 60s.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Minute
	}
	return p
}

// Retry calls the wrapped LM again after errors for which Retryable is true
// (429, 5xx, timeouts), with exponential backoff and full jitter, waiting
// exactly the provider's Retry-After when it sent one. A streaming call is
// not retried once a chunk has reached the caller, since the caller would
// see the text twice.
type Retry struct {
	next   LM
	policy RetryPolicy
	opts   options
}

// NewRetry wraps next; it uses WithLogger, WithMetrics, WithSleep and
// WithRand.
func NewRetry(next LM, policy RetryPolicy, opts ...Option) *Retry {
	return &Retry{next: next, policy: policy.withDefaults(), opts: buildOptions(opts)}
}

// Name returns the wrapped model's name.
func (r *Retry) Name() string { return r.next.Name() }

// Generate calls the wrapped model until it succeeds, fails for good, or
// the attempts run out.
func (r *Retry) Generate(ctx context.Context, req *Request) (*Response, error) {
	attemptReq := *req
	var streamed atomic.Bool
	if req.Stream != nil {
		attemptReq.Stream = func(ctx context.Context, chunk []byte) error {
			streamed.Store(true)
			return req.Stream(ctx, chunk)
		}
	}
	for attempt := 1; ; attempt++ {
		resp, err := r.next.Generate(ctx, &attemptReq)
		if err == nil || !Retryable(err) || ctx.Err() != nil || streamed.Load() {
			return resp, err
		}
		if attempt >= r.policy.MaxAttempts {
			r.opts.logger.Warn("llm retries exhausted", "model", r.Name(), "attempts", attempt, "kind", Kind(err), "error", err)
			return nil, err
		}
		delay, fromHeader := r.delay(attempt, err)
		if fromHeader && delay > r.policy.MaxRetryAfter {
			r.opts.logger.Warn("llm retry-after too long, not retrying", "model", r.Name(), "retry_after", delay, "limit", r.policy.MaxRetryAfter, "error", err)
			return nil, err
		}
		r.opts.logger.Info("llm call retrying", "model", r.Name(), "attempt", attempt, "delay", delay, "retry_after", fromHeader, "kind", Kind(err), "error", err)
		r.opts.metrics.retry(r.Name(), err)
		if serr := r.opts.sleep(ctx, delay); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
}

// delay is Retry-After when the provider sent one, else a full-jitter draw
// below min(MaxDelay, BaseDelay * 2^(attempt-1)).
func (r *Retry) delay(attempt int, err error) (time.Duration, bool) {
	if d, ok := RetryAfter(err); ok {
		return d, true
	}
	ceiling := float64(r.policy.BaseDelay) * math.Pow(2, float64(attempt-1))
	ceiling = math.Min(ceiling, float64(r.policy.MaxDelay))
	return time.Duration(r.opts.rand() * ceiling), false
}
