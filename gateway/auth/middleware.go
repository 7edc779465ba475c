package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/clientaddr"
)

// Authenticator turns a bearer token into a Principal. *Service implements
// it; it returns ErrInvalidToken (wrapped) for tokens to refuse with 401 and
// any other error for failures to report as such.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (Principal, error) {
	return f(ctx, token)
}

// UserLookup returns the current record of p's user. *Service implements it
// with Me, which answers from its short user cache; a deleted user is
// ErrInvalidToken.
type UserLookup interface {
	Me(ctx context.Context, p Principal) (User, error)
}

// Current checks token now, for a connection that outlives the request that
// opened it (a WebSocket checks it before every message). The token goes
// through a.Authenticate exactly as RequireAuth sends it (signature and
// claims through the verified-token cache, the session through the
// revocation cache), so logout, revocation and expiry past the leeway apply
// as they do to the next REST request. When users is not nil, the returned
// principal carries the roles of the current user record instead of the
// token's, so a demoted user loses privileges at once; a disabled account
// is ErrAccountDisabled and a deleted one ErrInvalidToken. An API key's
// principal already carries the current roles (APIKeys.Authenticate looked
// the user up), so it is not looked up twice.
func Current(ctx context.Context, a Authenticator, users UserLookup, token string) (Principal, error) {
	p, err := a.Authenticate(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	if users == nil || p.APIKeyID != "" {
		return p, nil
	}
	u, err := users.Me(ctx, p)
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, ErrAccountDisabled
	}
	p.Roles = u.Roles
	return p, nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return &principalCtx{Context: ctx, p: p}
}

// principalCtx is a context carrying a principal, which its Value gives as a
// *Principal. RequireAuth keeps that same pointer in the request's locals:
// the context and the principal are one allocation per request (a
// context.WithValue of a boxed principal were two). Nobody writes through the
// pointer.
type principalCtx struct {
	context.Context
	p Principal
}

// Value implements context.Context.
func (c *principalCtx) Value(key any) any {
	if key == (principalKey{}) {
		return &c.p
	}
	return c.Context.Value(key)
}

// PrincipalFromContext returns the principal RequireAuth stored in the
// request's user context.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	if p, ok := ctx.Value(principalKey{}).(*Principal); ok {
		return *p, true
	}
	return Principal{}, false
}

// PrincipalFrom returns the principal RequireAuth stored for this request.
func PrincipalFrom(c *fiber.Ctx) (Principal, bool) {
	if p, ok := c.Locals(principalKey{}).(*Principal); ok {
		return *p, true
	}
	return Principal{}, false
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header
// (scheme case-insensitive), or "" when there is none.
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// ErrMissingToken is the reason RequireAuth gives its Refused hook when the
// request carries no bearer token.
var ErrMissingToken = errors.New("auth: missing bearer token")

// RequireAuthOptions adds hooks to RequireAuthWith.
type RequireAuthOptions struct {
	// Refused, when set, runs when the request is refused with 401, after
	// WWW-Authenticate is set; reason is ErrMissingToken or the
	// Authenticator's error (wrapping ErrInvalidToken). It may count or log
	// the failure (never the token). A non-nil result replaces the 401, e.g.
	// a 429 for an address that keeps failing.
	Refused func(c *fiber.Ctx, reason error) error
}

// RequireAuth authenticates the request's bearer token and stores the
// Principal in the Fiber locals and the user context. A missing or refused
// token returns a *fiber.Error with status 401 after setting
// WWW-Authenticate; an Authenticator failure is returned as is, for the
// error handler to report as a server error.
func RequireAuth(a Authenticator) fiber.Handler {
	return RequireAuthWith(a, RequireAuthOptions{})
}

// RequireAuthWith is RequireAuth with hooks.
func RequireAuthWith(a Authenticator, opts RequireAuthOptions) fiber.Handler {
	refuse := func(c *fiber.Ctx, reason error, challenge, detail string) error {
		c.Set(fiber.HeaderWWWAuthenticate, challenge)
		if opts.Refused != nil {
			if err := opts.Refused(c, reason); err != nil {
				return err
			}
		}
		return fiber.NewError(fiber.StatusUnauthorized, detail)
	}
	return func(c *fiber.Ctx) error {
		token := BearerToken(c.Get(fiber.HeaderAuthorization))
		if token == "" {
			return refuse(c, ErrMissingToken, `Bearer realm="kowai"`, "missing bearer token")
		}
		p, err := a.Authenticate(c.UserContext(), token)
		if errors.Is(err, ErrInvalidToken) {
			return refuse(c, err, `Bearer realm="kowai", error="invalid_token"`, "invalid or expired token")
		}
		if err != nil {
			return err
		}
		pc := &principalCtx{Context: c.UserContext(), p: p}
		c.Locals(principalKey{}, &pc.p)
		c.SetUserContext(pc)
		return c.Next()
	}
}

// RequireRoles lets the request through when the principal holds any of
// roles; otherwise it returns a *fiber.Error with 403 (401 when RequireAuth
// did not run before it).
func RequireRoles(roles ...Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, ok := PrincipalFrom(c)
		if !ok {
			return fiber.NewError(fiber.StatusUnauthorized, "authentication required")
		}
		if !p.HasRole(roles...) {
			return fiber.NewError(fiber.StatusForbidden, "this action needs another role")
		}
		return c.Next()
	}
}

// RequirePermission lets the request through when the principal's roles
// grant every one of perms; otherwise it returns a *fiber.Error with 403
// (401 when RequireAuth did not run before it).
func RequirePermission(perms ...Permission) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, ok := PrincipalFrom(c)
		if !ok {
			return fiber.NewError(fiber.StatusUnauthorized, "authentication required")
		}
		for _, perm := range perms {
			if !p.Can(perm) {
				return fiber.NewError(fiber.StatusForbidden, "missing permission "+string(perm))
			}
		}
		return c.Next()
	}
}

// RateLimitKey identifies the caller for ratelimit.MiddlewareConfig.Key:
// "user:<id>" after RequireAuth, whether the caller used a session's access
// token or one of the user's API keys (a key draws from its user's buckets,
// so more keys do not buy a user more requests), otherwise the client
// address's clientaddr.LimitKey ("ip:<address>", "ip:<IPv6 /64>").
func RateLimitKey(c *fiber.Ctx) string { return string(AppendRateLimitKey(nil, c)) }

// AppendRateLimitKey appends RateLimitKey(c) to dst, without making a
// string (ratelimit.MiddlewareConfig.AppendKey).
func AppendRateLimitKey(dst []byte, c *fiber.Ctx) []byte {
	if p, ok := c.Locals(principalKey{}).(*Principal); ok {
		return append(append(dst, userRateLimitPrefix...), p.UserID...)
	}
	return clientaddr.AppendLimitKey(dst, clientaddr.From(c))
}

// userRateLimitPrefix starts an authenticated user's rate-limit identity.
const userRateLimitPrefix = "user:"

// UserRateLimitKey is RateLimitKey's identity for an authenticated user, for
// callers outside a Fiber request (WebSocket frames) that must count against
// the same buckets.
func UserRateLimitKey(userID string) string { return userRateLimitPrefix + userID }

// HTTPStatus maps the errors of this package to HTTP statuses for the
// gateway's error handler; ok is false for errors it does not know, which
// are server errors.
func HTTPStatus(err error) (status int, ok bool) {
	switch {
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrInvalidToken), errors.Is(err, ErrTokenReused):
		return http.StatusUnauthorized, true
	case errors.Is(err, ErrAccountDisabled), errors.Is(err, ErrForbidden), errors.Is(err, ErrAPIKeyNotAllowed):
		return http.StatusForbidden, true
	case errors.Is(err, ErrThrottled):
		return http.StatusTooManyRequests, true
	case errors.Is(err, ErrEmailTaken), errors.Is(err, ErrAppwriteLinkRequired), errors.Is(err, ErrAppwriteAlreadyLinked):
		return http.StatusConflict, true
	case errors.Is(err, ErrAppwriteEmailUnverified):
		return http.StatusForbidden, true
	case errors.Is(err, ErrInvalidInput):
		return http.StatusUnprocessableEntity, true
	case errors.Is(err, ErrAppwriteDisabled):
		return http.StatusNotFound, true
	case errors.Is(err, ErrAppwriteUnavailable):
		return http.StatusBadGateway, true
	}
	return 0, false
}
