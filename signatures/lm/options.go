package lm

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Option configures New and the layers (NewRetry, NewBreaker, ...). Each
// takes what it needs and ignores the rest.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	metrics    *Metrics
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration) error
	rand       func() float64
	httpClient *http.Client
	redis      redis.UniversalClient
	meter      *Meter
	tracing    trace.TracerProvider
}

func buildOptions(opts []Option) options {
	o := options{
		logger: slog.New(slog.DiscardHandler),
		now:    time.Now,
		sleep:  sleepCtx,
		rand:   rand.Float64,
	}
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// WithLogger sets the logger for decisions (retries, circuit changes,
// fallbacks, cache failures). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMetrics sets the Prometheus collectors to update (see NewMetrics).
// Without it nothing is counted.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithClock sets the time source used by the circuit breaker, latency and
// Retry-After dates (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSleep sets how the retry layer waits (default: a timer that stops
// early when ctx ends).
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = sleep }
}

// WithRand sets the source of backoff jitter, a function returning values
// in [0, 1) (default math/rand/v2).
func WithRand(r func() float64) Option { return func(o *options) { o.rand = r } }

// WithHTTPClient sets the HTTP client the providers start from; New wraps
// its transport to record status codes and Retry-After headers.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithRedis sets the Redis client for the shared response cache, instead of
// one built from Config.CacheRedisURL. The caller keeps ownership.
func WithRedis(c redis.UniversalClient) Option { return func(o *options) { o.redis = c } }

// WithMeter sets the Meter that New's accounting layer adds every call to
// (default: a fresh one, reachable through Stack.Meter).
func WithMeter(m *Meter) Option { return func(o *options) { o.meter = m } }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
