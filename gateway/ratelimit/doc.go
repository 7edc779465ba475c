// Package ratelimit limits request rates with the generic cell rate
// algorithm (GCRA), in process or shared through Redis, and provides the
// Fiber middleware the gateway puts in front of its routes.
//
// # Limits
//
// A Limit is a sustained rate (Rate requests per Period) plus a Burst: a key
// that has been idle may make Burst requests back to back, then one more
// every Period/Rate. Configuration strings take the form "N/s", "N/m" or
// "N/h" (burst N):
//
//	l, err := ratelimit.ParseLimit("120/m") // 120 at once, then one every 500 ms
//
// # Algorithm
//
// GCRA stores one number per key, its theoretical arrival time (TAT). A
// request at time now is allowed when TAT + interval - Burst*interval <= now,
// and then TAT advances by one interval. A denied request changes nothing,
// so Retry-After is exact: the caller is allowed at precisely
// now + RetryAfter. Keys whose TAT is in the past carry no information and
// are dropped. All arithmetic is in integer microseconds.
//
// # Implementations
//
// Memory keeps TATs in a sharded map bounded by MaxKeys, sweeping expired
// keys as it goes; each node limits on its own. Redis runs GCRA in a Lua
// script and stores the TAT with a TTL equal to the time until the key is
// full again. A check costs at most one round trip: checks arriving while one
// is in flight go together in the next, as one script call over the whole
// batch, so under load a round trip and a script call carry many checks.
// By default the script reads the Redis server's TIME so that every node
// uses one clock; RedisOptions.Clock replaces it (tests use it for exact,
// repeatable results). Both pass the same contract tests.
//
// # Middleware
//
// Middleware limits per bucket name (normally one per route) and per key
// (the user ID when authenticated, the client IP otherwise):
//
//	app.Post("/api/v1/auth/login", ratelimit.Middleware(ratelimit.MiddlewareConfig{
//		Limiter: limiter,
//		Limit:   ratelimit.PerMinute(10),
//		Name:    "auth.login",
//	}), loginHandler)
//
// Responses carry RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset;
// a refusal returns a *fiber.Error with status 429 after setting Retry-After,
// for the application's error handler to render.
package ratelimit
