package gateway

import (
	"context"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/clientaddr"
	"github.com/kowai/kowai/gateway/ratelimit"
)

// Default limits, used when the API leaves them zero.
const (
	// DefaultRateLimitPerMinute is KOWAI_RATE_LIMIT's default: requests per
	// minute per user and route, and per client address for requests without
	// accepted credentials, over all routes.
	DefaultRateLimitPerMinute = 120
	// DefaultAuthRateLimitPerMinute bounds register, login, refresh and
	// Appwrite sign-in per client address, per route: a guesser or a
	// registration bot gets far less room than a signed-in user.
	DefaultAuthRateLimitPerMinute = 10
)

// chatTurnBucket is the per-user bucket of chat turns: POST /chat/message and
// every WebSocket message frame count against it together.
const chatTurnBucket = "chat.message"

// rateLimits builds the per-route rate-limit middleware. Every /api/v1 route
// gets exactly one check, so a request costs one limiter round trip.
type rateLimits struct {
	limiter ratelimit.Limiter
	perUser ratelimit.Limit
	perIP   ratelimit.Limit
	log     *slog.Logger
}

func newRateLimits(api API, log *slog.Logger) (rateLimits, error) {
	r := rateLimits{limiter: api.Limiter, perUser: api.RateLimit, perIP: api.AuthRateLimit, log: log}
	if r.limiter == nil {
		r.limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	}
	if r.perUser == (ratelimit.Limit{}) {
		r.perUser = ratelimit.PerMinute(DefaultRateLimitPerMinute)
	}
	if r.perIP == (ratelimit.Limit{}) {
		r.perIP = ratelimit.PerMinute(DefaultAuthRateLimitPerMinute)
	}
	for _, l := range []ratelimit.Limit{r.perUser, r.perIP} {
		if err := l.Validate(); err != nil {
			return rateLimits{}, err
		}
	}
	return r, nil
}

// user limits route name per authenticated user (per client address when the
// route has no authentication) at the default limit. It runs after
// RequireAuth so the key is the user. A limiter failure lets the request
// through and is logged: an outage of Redis must not take the API down.
func (r rateLimits) user(name string) fiber.Handler {
	return ratelimit.Middleware(ratelimit.MiddlewareConfig{Limiter: r.limiter, Limit: r.perUser, Name: name,
		AppendKey: auth.AppendRateLimitKey, FailOpen: true, Logger: r.log})
}

// anonymous counts a request that carries no accepted credentials (an
// anonymous route, a route no one matched, a missing or refused token)
// against one bucket per client address at the default limit, so that
// probing with bad tokens, hammering /health or scanning for routes is
// limited like a signed-in user is. A limiter failure lets the request
// through, as for user.
func (r rateLimits) anonymous() func(c *fiber.Ctx) error {
	return ratelimit.Checker(ratelimit.MiddlewareConfig{Limiter: r.limiter, Limit: r.perUser, Name: "anonymous",
		AppendKey: appendAddrKey, FailOpen: true, Logger: r.log})
}

// appendAddrKey appends the rate-limit key of the request's client address
// (clientaddr.LimitKey) to dst.
func appendAddrKey(dst []byte, c *fiber.Ctx) []byte {
	return clientaddr.AppendLimitKey(dst, clientaddr.From(c))
}

// strict limits an unauthenticated credential route per client address at
// the auth limit. A limiter failure fails the request: these routes guard
// credentials, and the login throttle fails closed too.
func (r rateLimits) strict(name string) fiber.Handler {
	return ratelimit.Middleware(ratelimit.MiddlewareConfig{Limiter: r.limiter, Limit: r.perIP, Name: name,
		AppendKey: appendAddrKey, Logger: r.log})
}

// allowUser counts one request of userID against the per-user bucket name,
// the very bucket user(name) counts REST requests in, for requests that do
// not pass through a route's middleware (WebSocket frames).
func (r rateLimits) allowUser(ctx context.Context, name, userID string) (ratelimit.Result, error) {
	return r.limiter.Allow(ctx, ratelimit.BucketKey(name, auth.UserRateLimitKey(userID)), r.perUser)
}
