package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/clientaddr"
)

// MiddlewareConfig configures Middleware.
type MiddlewareConfig struct {
	// Limiter makes the decisions; required.
	Limiter Limiter
	// Limit applies to each (Name, Key) pair; required.
	Limit Limit
	// Name identifies the bucket, e.g. "auth.login". Empty means the matched
	// route's method and path template, which is only specific when the
	// middleware is attached to the route itself rather than with app.Use.
	Name string
	// Key returns the identity being limited, e.g. the user ID when
	// authenticated and the client address otherwise. Nil means AppendKey's
	// identity as a string, or, when AppendKey is nil too, the client
	// address's clientaddr.LimitKey.
	Key func(c *fiber.Ctx) string
	// AppendKey, when set, appends the caller's identity to dst; Key is then
	// derived from it when nil. With an in-process limiter the bucket key is
	// built in a pooled buffer and looked up without a string: two
	// allocations fewer per request.
	AppendKey func(dst []byte, c *fiber.Ctx) []byte
	// FailOpen lets requests through when the limiter fails (the failure is
	// logged). By default the limiter's error is returned and the request
	// fails, which suits login routes better than an open door.
	FailOpen bool
	// Logger receives limiter failures; nil discards them.
	Logger *slog.Logger
}

// Middleware returns a Fiber handler enforcing cfg.Limit. Every checked
// response carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (whole seconds, rounded up). A denied request gets Retry-After (whole
// seconds, at least 1) and the handler returns *fiber.Error with status 429;
// the application's error handler renders it and must keep those headers.
// It panics when cfg lacks a Limiter or holds an invalid Limit, which is a
// programming error found at startup.
func Middleware(cfg MiddlewareConfig) fiber.Handler {
	check := Checker(cfg)
	return func(c *fiber.Ctx) error {
		if err := check(c); err != nil {
			return err
		}
		return c.Next()
	}
}

// Checker returns what Middleware does before continuing the chain: it
// counts the request against cfg.Limit, sets the same headers and returns
// nil when the request fits, the 429 *fiber.Error when it does not (or the
// limiter's error, unless cfg.FailOpen). Use it where the decision is part of
// another step, such as refusing a bad token. It panics like Middleware.
func Checker(cfg MiddlewareConfig) func(c *fiber.Ctx) error {
	if cfg.Limiter == nil {
		panic("ratelimit: Middleware needs a Limiter")
	}
	if err := cfg.Limit.Validate(); err != nil {
		panic(err.Error())
	}
	if cfg.Key == nil && cfg.AppendKey == nil {
		cfg.AppendKey = func(dst []byte, c *fiber.Ctx) []byte { return clientaddr.AppendLimitKey(dst, clientaddr.From(c)) }
	}
	if cfg.Key == nil {
		appendKey := cfg.AppendKey
		cfg.Key = func(c *fiber.Ctx) string { return string(appendKey(nil, c)) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	bytesAllow, _ := cfg.Limiter.(bytesLimiter)
	if cfg.AppendKey == nil {
		bytesAllow = nil
	}
	// Buffers for the bucket keys given as bytes: a buffer on the stack
	// would escape through AppendKey.
	keyBufs := sync.Pool{New: func() any { return new([]byte) }}
	return func(c *fiber.Ctx) error {
		var res Result
		var err error
		if bytesAllow != nil {
			// BucketKey(name, Key(c)), in a pooled buffer.
			buf := keyBufs.Get().(*[]byte)
			key := (*buf)[:0]
			if cfg.Name != "" {
				key = append(key, cfg.Name...)
			} else {
				key = append(append(append(key, c.Method()...), ' '), c.Route().Path...)
			}
			key = cfg.AppendKey(append(key, '|'), c)
			res, err = bytesAllow.allowBytes(c.UserContext(), key, cfg.Limit)
			if cap(key) <= maxPooledKey {
				*buf = key
				keyBufs.Put(buf)
			}
		} else {
			res, err = cfg.Limiter.Allow(c.UserContext(), BucketKey(bucketName(c, cfg.Name), cfg.Key(c)), cfg.Limit)
		}
		if err != nil {
			if cfg.FailOpen {
				cfg.Logger.Warn("rate limiter failed; letting request through", "bucket", bucketName(c, cfg.Name), "error", err)
				return nil
			}
			return err
		}
		setHeaders(c, res)
		if !res.Allowed {
			retry := RetryAfterSeconds(res)
			c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(retry, 10))
			return fiber.NewError(fiber.StatusTooManyRequests, "rate limit exceeded; retry after "+strconv.FormatInt(retry, 10)+" s")
		}
		return nil
	}
}

// The rate-limit headers' keys as fasthttp normalizes them.
var (
	headerLimit     = []byte("Ratelimit-Limit")
	headerRemaining = []byte("Ratelimit-Remaining")
	headerReset     = []byte("Ratelimit-Reset")
)

// setHeaders writes RateLimit-Limit, -Remaining and -Reset of res. It runs
// on every checked request: the numbers are formatted into a stack buffer
// (fasthttp copies them), the keys are given normalized.
func setHeaders(c *fiber.Ctx, res Result) {
	h := &c.Response().Header
	var buf [20]byte
	h.SetCanonical(headerLimit, strconv.AppendInt(buf[:0], int64(res.Limit), 10))
	h.SetCanonical(headerRemaining, strconv.AppendInt(buf[:0], int64(res.Remaining), 10))
	h.SetCanonical(headerReset, strconv.AppendInt(buf[:0], ceilSeconds(res.ResetAfter), 10))
}

// maxPooledKey keeps an odd long key's buffer out of the pool.
const maxPooledKey = 1 << 10

// bucketName is the bucket's name: name, or the matched route's method and
// path template.
func bucketName(c *fiber.Ctx, name string) string {
	if name != "" {
		return name
	}
	return c.Method() + " " + c.Route().Path
}

// bytesLimiter is a Limiter that also takes a key as bytes, which it does
// not keep past the call (Memory): the caller need not make a string of it.
type bytesLimiter interface {
	allowBytes(ctx context.Context, key []byte, limit Limit) (Result, error)
}

var _ bytesLimiter = (*Memory)(nil)

// BucketKey is the limiter key of identity key in the bucket name, as
// Middleware counts it; callers outside a Fiber request use it to count
// against the same bucket.
func BucketKey(name, key string) string { return name + "|" + key }

// RetryAfterSeconds is the Retry-After a denied request carries: whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(res Result) int64 { return max(1, ceilSeconds(res.RetryAfter)) }

// ceilSeconds rounds d up to whole seconds, as the headers require integers
// and rounding down would invite a retry that is refused again.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
